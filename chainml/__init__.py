"""chainml: federated meta-learning for fleets of tiny devices, coordinated on Ethereum."""

__version__ = "0.1.0"
