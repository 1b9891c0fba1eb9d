"""Everything that talks to the ledger: compilation, deployment, bindings and EIP-712 signing."""
