"""The round as pure functions of chain and IPFS data.

The aggregator proposes, every validator reviews and ``chainml verify`` replays exactly what
these modules compute: the evidence of a round (``evidence``), the aggregate and its lists
(``recompute``), the reputation table and its root (``settlement``), a validator's verdict
(``review``), the whole history (``verify``), the bytes on IPFS (``payloads``) and a round's
gas (``gas``). Nothing here keeps local state or holds a key.
"""
