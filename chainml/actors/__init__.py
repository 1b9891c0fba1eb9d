"""The protocol's parties, each a small object that owns its key (and secrets) and acts only
through its own transactions: :class:`~chainml.actors.node.NodeClient` (a library a device
integration calls), :class:`~chainml.actors.gateway.Gateway`,
:class:`~chainml.actors.aggregator.Aggregator`, :class:`~chainml.actors.validator.Validator` and
:class:`~chainml.actors.challenger.Challenger`.

Each reads only the chain and IPFS, so the same object serves two callers: the swarm harness
(``chainml.swarm``), which composes them in one process and moves a local chain's clock, and a
long-lived daemon (``chainml validator run`` and friends, :mod:`chainml.actors.daemon`) that
wakes on every new block and derives everything it does from chain state (plus a validator's
secret file), so it can be killed and restarted at any point.

Modules are imported on use: ``import chainml.actors`` pulls in neither torch nor web3.
"""
