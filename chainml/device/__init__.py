"""Simulated MCU devices: hardware profiles, radio cost models and energy accounting.

Nothing here talks to the chain or IPFS: a device only sees weights, data and its own budget.
"""
