"""The swarm: simulated nodes, gateway, aggregator and validators running rounds on the ledger."""
