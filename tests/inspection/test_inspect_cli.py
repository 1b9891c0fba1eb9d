"""``chainml inspect`` against a chain populated like a swarm run (see swarm_chain.py)."""

from __future__ import annotations

from chainml.chain.reader import ROLES
from chainml.storage.cid import onchain_to_str
from tests.inspection.swarm_chain import N_GATEWAY_NODES, cid


def test_contracts_lists_addresses_roles_and_counts(invoke_json, invoke, swarm_chain):
    view = invoke_json("contracts")
    s = swarm_chain
    assert {c["name"]: c["address"] for c in view["contracts"]} == s.deployments.contracts
    assert all(c["code_bytes"] > 1_000 for c in view["contracts"])
    assert view["roles"]["admin"] == [s.admin]
    assert view["roles"]["aggregator"] == [s.aggregator]
    assert view["roles"]["validator"] == s.validators
    assert view["roles"]["voting"] == [s.deployments.contracts["ChainMLVoting"]]
    assert set(view["roles"]) == set(ROLES)
    counts = view["counts"]
    assert (counts["nodes"], counts["validators"], counts["versions"]) == (6, 3, 3)
    assert (counts["current_round"], counts["proposals"], counts["batches"]) == (3, 3, 1)

    table = invoke("contracts")
    assert table.exit_code == 0, table.output
    assert s.deployments.contracts["ChainMLLedger"] in table.stdout
    assert s.aggregator in table.stdout and "Roles" in table.stdout


def test_nodes_show_status_reputation_commitments_gateway(invoke_json, invoke, swarm_chain):
    s = swarm_chain
    rows = {r["address"]: r for r in invoke_json("nodes")}
    assert list(rows) == [n.address for n in s.nodes]  # registration order
    bad = rows[s.adversary.address]
    assert (bad["reputation"], bad["excluded"], bad["included"]) == (1_000 - 2 * 50, 2, 0)
    for n in s.honest:
        assert (rows[n.address]["reputation"], rows[n.address]["included"]) == (1_020, 2)
        assert rows[n.address]["status"] == "active"
    for n in s.nodes[:N_GATEWAY_NODES]:
        # relayed in round 1 (an event each); batched in round 2 (one root on chain, the
        # leaves on IPFS: counted from the leaves file)
        assert rows[n.address]["gateway"] == s.gateway
        assert rows[n.address]["commitments"] == 2
    direct = s.nodes[N_GATEWAY_NODES]
    assert rows[direct.address]["gateway"] is None
    assert rows[direct.address]["commitments"] == 3
    assert rows[direct.address]["last_commit_round"] == 3
    assert rows[direct.address]["profile"] == onchain_to_str(*cid(f"profile-{direct.address}"))

    table = invoke("nodes")
    assert table.exit_code == 0, table.output
    assert "Nodes (6)" in table.stdout and s.adversary.address in table.stdout


def test_versions_form_a_lineage_with_cids_and_round_metrics(invoke_json, invoke, swarm_chain):
    rows = invoke_json("versions")
    assert [(r["version"], r["parent"], r["round"]) for r in rows] == [
        (0, None, 0), (1, 0, 1), (2, 1, 2),
    ]  # fmt: skip
    assert [r["children"] for r in rows] == [[1], [2], []]
    assert rows[1]["weights"] == onchain_to_str(*cid("aggregate-r1"))
    assert rows[2]["metrics"] == onchain_to_str(*cid("metrics-r2"))
    # round 1: 6 relayed/direct commitments; round 2: 4 in a batch (counted from its
    # BatchPosted event: only the 2 direct ones emit CommitmentAccepted) + 2 direct
    assert (rows[1]["commitments"], rows[1]["included"], rows[1]["excluded"]) == (6, 5, 1)
    assert rows[2]["commitments"] == 6
    losses = swarm_chain.losses
    expected = sum(v[1] for (r, _), v in losses.items() if r == 1) / 6
    assert abs(rows[1]["mean_loss_after"] - expected) < 1e-9

    tree = invoke("versions")
    assert tree.exit_code == 0, tree.output
    lines = tree.stdout.splitlines()
    v2 = next(i for i, line in enumerate(lines) if "v2 round 2" in line)
    v1 = next(i for i, line in enumerate(lines) if "v1 round 1" in line)
    assert lines[0].startswith("v0 genesis") and 0 < v1 < v2
    assert lines[v2].index("v2") > lines[v1].index("v1")  # nested one level deeper
    # The losses are labelled as what they are: the nodes' own report on their query samples.
    before = sum(v[0] for (r, _), v in losses.items() if r == 1) / 6
    flat = " ".join(tree.stdout.split())
    assert (
        f"nodes' reported query loss {before:.4g} as published, {expected:.4g} after adapting"
        in flat
    ), tree.stdout


def test_rounds_show_state_commitments_proposals_and_votes(invoke_json, invoke, swarm_chain):
    rows = invoke_json("rounds")
    assert [r["status"] for r in rows] == ["finalized", "finalized", "closed"]
    assert [r["produced_version"] for r in rows] == [1, 2, None]
    assert [r["commitments"] for r in rows] == [6, 6, 1]
    assert [r["batches"] for r in rows] == [0, 1, 0]
    r1, r2 = rows[0], rows[1]
    (p1,) = r1["proposals"]
    assert (p1["status"], p1["yes"], p1["no"], p1["required"]) == ("accepted", 2, 1, 2)
    assert [v["approve"] for v in p1["votes"]] == [True, True, False]
    assert {v["validator"] for v in p1["votes"]} == set(swarm_chain.validators)
    assert [p["status"] for p in r2["proposals"]] == ["rejected", "accepted"]
    assert r2["proposals"][1]["aggregate"] == onchain_to_str(*cid("aggregate-r2"))
    assert rows[2]["proposals"] == []

    (only,) = invoke_json("rounds", "--round", "2")
    assert only["round"] == 2
    detail = invoke("rounds", "--round", "1")
    assert detail.exit_code == 0, detail.output
    assert "Votes on proposal 1" in detail.stdout and swarm_chain.validators[2] in detail.stdout
    missing = invoke("rounds", "--round", "9")
    assert missing.exit_code == 1 and "round 9 does not exist" in str(missing.exception)


def test_events_filter_by_round_node_and_contract(invoke_json, invoke, swarm_chain):
    everything = invoke_json("events")
    names = {e["name"] for e in everything}
    assert names >= {"NodeRegistered", "CommitmentAccepted", "BatchPosted", "VoteRevealed",
                     "ProposalRejected", "RoundClosed", "ReputationChanged"}  # fmt: skip
    blocks = [(e["block"], e["log_index"]) for e in everything]
    assert blocks == sorted(blocks)

    round1 = invoke_json("events", "--round", "1")
    assert {e["args"].get("round", 1) for e in round1} == {1}
    assert sum(e["name"] == "VoteRevealed" for e in round1) == 3  # via the proposal id
    assert not any(e["name"] == "BatchPosted" for e in round1)

    bad = swarm_chain.adversary.address
    mine = invoke_json("events", "--node", bad.lower())
    assert mine and all(bad in e["args"].values() for e in mine)
    # Its table scores went below the initial one, so they were proven on chain (issue 12).
    proven = [e for e in mine if e["name"] == "ReputationProven"]
    assert [(e["args"]["round"], e["args"]["score"]) for e in proven] == [(1, 950), (2, 900)]

    voting = invoke_json("events", "--contract", "voting")
    assert voting and {e["contract"] for e in voting} == {"ChainMLVoting"}
    by_address = invoke_json(
        "events", "--contract", swarm_chain.deployments.contracts["ChainMLVoting"]
    )
    assert by_address == voting

    relayed = invoke_json("events", "--event", "CommitmentsRelayed")
    assert [e["args"]["count"] for e in relayed] == [N_GATEWAY_NODES]

    table = invoke("events", "--round", "3")
    assert table.exit_code == 0, table.output
    assert "RoundClosed" in table.stdout and "RoundOpened" in table.stdout


def test_node_history_tells_one_nodes_story(invoke_json, invoke, swarm_chain):
    bad = swarm_chain.adversary
    history = invoke_json("node", bad.address)
    assert history["node"]["reputation"] == 900 and history["roles"] == []
    rounds = {r["round"]: r for r in history["rounds"]}
    assert sorted(rounds) == [1, 2]
    for r in (1, 2):
        assert rounds[r]["committed"] and rounds[r]["outcome"] == "excluded"
        assert rounds[r]["loss_before"] == swarm_chain.losses[(r, bad.address)][0]
        assert rounds[r]["reputation_delta"] == -50
    assert [rounds[1]["reputation"], rounds[2]["reputation"]] == [950, 900]

    batched = swarm_chain.nodes[0]
    story = invoke_json("node", batched.address)
    committed = {r["round"]: r["committed"] for r in story["rounds"]}
    assert committed == {1: True, 2: True}  # round 2's commitment is a batch leaf (IPFS)

    aggregator = invoke_json("node", swarm_chain.aggregator)
    assert aggregator["node"] is None and aggregator["roles"] == ["aggregator"]
    assert {e["name"] for e in aggregator["events"]} >= {"RoleGranted", "ProposalSubmitted"}

    table = invoke("node", bad.address)
    assert table.exit_code == 0, table.output
    assert "excluded" in table.stdout and "900 (-50)" in table.stdout
