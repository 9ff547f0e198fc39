"""Unit tests for the routing policies and their registry (pure, no I/O, fast)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.routing import POLICY_NAMES, PolicyError, RequestFacts, make_policy, validate_policy
from node.routing.cache_aware import CacheAwarePolicy
from node.routing.hash_ring import stable_hash
from node.routing.prefix_tree import Node, PrefixTree


@dataclass(frozen=True, slots=True)
class Cand:
    id: str
    url: str = "http://w"
    priority: int = 0
    cost: float = 0.0
    load: int = 0


def pool(count: int, **fields: Any) -> list[Cand]:
    return [Cand(id=f"w{i}", **fields) for i in range(count)]


NO_FACTS = RequestFacts()


def prompt_of(rng: random.Random, length: int) -> str:
    return "".join(rng.choice("abcdefghijklmnop ") for _ in range(length))


# --- round robin / random / power of two / least load -------------------------------------


def test_round_robin_rotates_exactly() -> None:
    policy = make_policy("round_robin")
    cands = pool(3)
    assert [policy.select(cands, NO_FACTS) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    # The pool shrinks: the counter wraps into the new length.
    assert policy.select(cands[:2], NO_FACTS) == 1
    assert policy.select(cands[:2], NO_FACTS) == 0


def test_random_is_roughly_uniform_and_seedable() -> None:
    cands = pool(3)
    policy = make_policy("random", {"seed": 7})
    picks = Counter(policy.select(cands, NO_FACTS) for _ in range(3000))
    assert set(picks) == {0, 1, 2}
    assert all(900 <= n <= 1100 for n in picks.values()), picks
    a, b = make_policy("random", {"seed": 3}), make_policy("random", {"seed": 3})
    assert [a.select(cands, NO_FACTS) for _ in range(20)] == [
        b.select(cands, NO_FACTS) for _ in range(20)
    ]


def test_power_of_two_prefers_lower_load() -> None:
    cands = [Cand("a", load=10), Cand("b", load=0), Cand("c", load=10), Cand("d", load=10)]
    policy = make_policy("power_of_two", {"seed": 1})
    picks = Counter(policy.select(cands, NO_FACTS) for _ in range(2000))
    # "b" wins whenever it is drawn (probability 1/2), never loses a draw.
    assert 850 <= picks[1] <= 1150, picks
    assert policy.select([Cand("only", load=99)], NO_FACTS) == 0
    # Two candidates are always both drawn: the lower load always wins.
    assert all(
        policy.select([Cand("x", load=5), Cand("y", load=1)], NO_FACTS) == 1 for _ in range(50)
    )


def test_power_of_two_ties_prefer_lower_cost_then_higher_priority() -> None:
    policy = make_policy("power_of_two", {"seed": 2})
    by_cost = [Cand("x", cost=2.0), Cand("y", cost=1.0)]
    assert all(policy.select(by_cost, NO_FACTS) == 1 for _ in range(50))
    by_priority = [Cand("x", priority=5), Cand("y", priority=1)]
    assert all(policy.select(by_priority, NO_FACTS) == 0 for _ in range(50))


def test_least_load_picks_minimum_then_priority_then_cost() -> None:
    policy = make_policy("least_load")
    assert policy.select([Cand("a", load=3), Cand("b", load=1), Cand("c", load=2)], NO_FACTS) == 1
    tied_load = [Cand("a", load=1, priority=1), Cand("b", load=1, priority=9), Cand("c", load=4)]
    assert policy.select(tied_load, NO_FACTS) == 1
    tied_priority = [Cand("a", cost=3.0), Cand("b", cost=0.5), Cand("c", cost=1.0)]
    assert policy.select(tied_priority, NO_FACTS) == 1


def test_least_load_rotates_among_exact_ties() -> None:
    policy = make_policy("least_load")
    cands = [Cand("a", load=2), Cand("b"), Cand("c", load=1), Cand("d"), Cand("e")]
    picks = [policy.select(cands, NO_FACTS) for _ in range(6)]
    assert sorted(picks[:3]) == [1, 3, 4]
    assert Counter(picks) == {1: 2, 3: 2, 4: 2}


# --- hash policies --------------------------------------------------------------------------


def test_stable_hash_is_fixed_across_processes() -> None:
    # A pinned value: Python's salted hash() would differ from run to run.
    assert stable_hash("session-42") == 0x28BD467CBC4B1AAC
    assert 0 <= stable_hash("\ud800 lone surrogate") < 2**64


def test_consistent_hashing_is_sticky_and_moves_only_removed_workers_keys() -> None:
    policy = make_policy("consistent_hashing")
    cands = pool(5)
    keys = [f"user-{i}" for i in range(1000)]
    before = {k: cands[policy.select(cands, RequestFacts(routing_key=k))].id for k in keys}
    again = {k: cands[policy.select(cands, RequestFacts(routing_key=k))].id for k in keys}
    assert before == again
    assert len(set(before.values())) == 5
    fresh = make_policy("consistent_hashing")  # another mesh node agrees
    assert all(
        cands[fresh.select(cands, RequestFacts(routing_key=k))].id == before[k] for k in keys
    )

    remaining = [c for c in cands if c.id != "w2"]
    policy.forget("w2")
    after = {k: remaining[policy.select(remaining, RequestFacts(routing_key=k))].id for k in keys}
    moved = [k for k in keys if after[k] != before[k]]
    assert all(before[k] == "w2" for k in moved)
    assert len(moved) == sum(1 for k in keys if before[k] == "w2")
    assert len(moved) <= 300


def test_consistent_hashing_without_key_spreads() -> None:
    policy = make_policy("consistent_hashing", {"virtual_nodes": 8})
    cands = pool(4)
    assert Counter(policy.select(cands, NO_FACTS) for _ in range(40)) == {
        0: 10,
        1: 10,
        2: 10,
        3: 10,
    }


def test_prefix_hash_same_prefix_sticks_and_different_prefixes_spread() -> None:
    policy = make_policy("prefix_hash", {"prefix_chars": 64})
    cands = pool(4)
    rng = random.Random(5)
    system = prompt_of(rng, 64)
    targets = {
        policy.select(cands, RequestFacts(prompt=system + prompt_of(rng, 300))) for _ in range(50)
    }
    assert len(targets) == 1

    spread = Counter(
        policy.select(cands, RequestFacts(prompt=prompt_of(rng, 100))) for _ in range(400)
    )
    assert len(spread) == 4 and min(spread.values()) >= 50, spread


def test_prefix_hash_falls_back_to_routing_key_then_round_robin() -> None:
    policy = make_policy("prefix_hash")
    cands = pool(3)
    keyed = {policy.select(cands, RequestFacts(routing_key="s1")) for _ in range(20)}
    assert len(keyed) == 1
    assert [policy.select(cands, NO_FACTS) for _ in range(3)] == [0, 1, 2]


# --- cache aware ----------------------------------------------------------------------------


def audit(tree: PrefixTree) -> None:
    """Recompute the tree's counters from scratch and check its invariants."""
    chars = nodes = 0
    footprint: Counter[str] = Counter()
    stack: list[Node] = [tree.root]
    while stack:
        node = stack.pop()
        for child in (node.children or {}).values():
            assert child.parent is node and child.workers
            if node is not tree.root:
                assert set(child.workers) <= set(node.workers)
            chars += len(child.key)
            nodes += 1
            for wid in child.workers:
                footprint[wid] += len(child.key)
            stack.append(child)
    assert (chars, nodes) == (tree.total_chars, tree.node_count)
    assert {w: tree.footprint(w) for w in footprint} == dict(footprint)
    assert tree.total_chars <= tree.max_size


def cache_aware(**params: Any) -> CacheAwarePolicy:
    policy = make_policy("cache_aware", params)
    assert isinstance(policy, CacheAwarePolicy)
    return policy


def test_cache_aware_repeated_prompt_sticks() -> None:
    policy = cache_aware()
    cands = pool(4)
    rng = random.Random(1)
    prompt = prompt_of(rng, 500)
    first = policy.select(cands, RequestFacts(prompt=prompt))
    # Even as that worker gets a little busier, the cached prefix keeps it chosen.
    for load in range(1, 10):
        busy = [replace(c, load=load) if i == first else c for i, c in enumerate(cands)]
        assert policy.select(busy, RequestFacts(prompt=prompt + prompt_of(rng, 50))) == first
    audit(policy.tree)


def test_cache_aware_new_prompts_go_to_the_emptiest_tree() -> None:
    policy = cache_aware()
    cands = pool(4)
    rng = random.Random(2)
    picks = [policy.select(cands, RequestFacts(prompt=prompt_of(rng, 400))) for _ in range(4)]
    assert sorted(picks) == [0, 1, 2, 3]
    # A short shared opening is below cache_threshold, so it does not pull traffic together.
    opening = prompt_of(rng, 64)
    more = [
        policy.select(cands, RequestFacts(prompt=opening + prompt_of(rng, 400))) for _ in range(4)
    ]
    assert sorted(more) == [0, 1, 2, 3]


def test_cache_aware_imbalance_falls_back_to_least_load() -> None:
    policy = cache_aware()
    cands = pool(3)
    prompt = prompt_of(random.Random(3), 300)
    home = policy.select(cands, RequestFacts(prompt=prompt))
    other = (home + 1) % 3
    # Within the thresholds (difference 60 <= 64) the cached prefix wins over load.
    loads = [70, 70, 70]
    loads[other] = 10
    mild = [replace(c, load=loads[i]) for i, c in enumerate(cands)]
    assert policy.select(mild, RequestFacts(prompt=prompt)) == home
    # 200 vs 10 exceeds both thresholds: balance wins.
    loads = [200, 200, 200]
    loads[other] = 10
    skewed = [replace(c, load=loads[i]) for i, c in enumerate(cands)]
    assert policy.select(skewed, RequestFacts(prompt=prompt)) == other
    # The relative threshold applies too: 300 vs 100 differs by 200, but 3x < 4x.
    relaxed = cache_aware(balance_rel_threshold=4.0)
    assert relaxed.select(cands, RequestFacts(prompt=prompt)) == home
    loads = [300, 300, 300]
    loads[other] = 100
    wide = [replace(c, load=loads[i]) for i, c in enumerate(cands)]
    assert relaxed.select(wide, RequestFacts(prompt=prompt)) == home
    assert policy.select([replace(cands[home], load=70)], RequestFacts(prompt=prompt)) == 0


def test_cache_aware_empty_prompt_uses_least_load() -> None:
    policy = cache_aware()
    cands = [Cand("a", load=5), Cand("b", load=1), Cand("c", load=3)]
    assert policy.select(cands, NO_FACTS) == 1
    assert policy.tree.total_chars == 0


def test_cache_aware_memory_bound_holds_after_many_inserts() -> None:
    policy = cache_aware(max_tree_size=5000, chunk_chars=16)
    cands = pool(5)
    rng = random.Random(4)
    shared = prompt_of(rng, 200)
    for i in range(400):
        head = shared if i % 3 == 0 else ""
        policy.select(cands, RequestFacts(prompt=head + prompt_of(rng, rng.randrange(1, 600))))
        assert policy.tree.total_chars <= 5000
    audit(policy.tree)
    assert policy.tree.total_chars > 2500  # eviction trims, it does not empty the tree
    # The most recent prompt survives eviction and still routes to its worker.
    last = prompt_of(rng, 400)
    chosen = policy.select(cands, RequestFacts(prompt=last))
    assert policy.select(cands, RequestFacts(prompt=last)) == chosen


def test_cache_aware_forget_removes_worker() -> None:
    policy = cache_aware()
    cands = pool(3)
    rng = random.Random(6)
    prompts = [prompt_of(rng, 300) for _ in range(9)]
    owners = [policy.select(cands, RequestFacts(prompt=p)) for p in prompts]
    gone = cands[owners[0]].id
    assert policy.tree.footprint(gone) > 0
    policy.forget(gone)
    policy.forget("never-seen")
    assert policy.tree.footprint(gone) == 0
    audit(policy.tree)
    remaining = [c for c in cands if c.id != gone]
    for p, owner in zip(prompts, owners, strict=True):
        pick = remaining[policy.select(remaining, RequestFacts(prompt=p))].id
        if cands[owner].id != gone:
            assert pick == cands[owner].id


# --- registry -------------------------------------------------------------------------------


def test_unknown_policy_lists_valid_names() -> None:
    with pytest.raises(PolicyError, match=r"unknown routing policy 'fastest'.*least_load"):
        make_policy("fastest")


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        (
            "cache_aware",
            {"cache_threshold": 1.5},
            r"'cache_threshold' must be a number in \[0, 1\]",
        ),
        ("cache_aware", {"cache_threshold": "0.5"}, "'cache_threshold' must be a number"),
        (
            "cache_aware",
            {"balance_abs_threshold": 1.5},
            "'balance_abs_threshold' must be an integer",
        ),
        ("cache_aware", {"balance_rel_threshold": 0.5}, r"'balance_rel_threshold' must be .*>= 1"),
        ("cache_aware", {"max_tree_size": 0}, "'max_tree_size' must be an integer"),
        ("cache_aware", {"cache_threshold": float("nan")}, "'cache_threshold'"),
        ("consistent_hashing", {"virtual_nodes": 0}, r"\[1, 1000\]"),
        ("consistent_hashing", {"virtual_nodes": True}, "'virtual_nodes' must be an integer"),
        ("prefix_hash", {"prefix_chars": 0}, "'prefix_chars'"),
        ("random", {"seed": "abc"}, "'seed' must be an integer or null"),
        ("round_robin", {"x": 1}, "unknown parameter 'x'; allowed parameters: none"),
        ("prefix_hash", {"prefix_len": 8}, "allowed parameters: prefix_chars, virtual_nodes"),
        ("least_load", [("a", 1)], "parameters must be an object"),
    ],
)
def test_bad_params_are_rejected(name: str, params: Any, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        validate_policy(name, params)
    with pytest.raises(PolicyError):
        make_policy(name, params)


def test_validate_policy_fills_defaults_and_normalises() -> None:
    assert validate_policy("round_robin") == {}
    assert validate_policy("random", None) == {"seed": None}
    assert validate_policy("prefix_hash", {"prefix_chars": 100}) == {
        "virtual_nodes": 160,
        "prefix_chars": 100,
    }
    params = validate_policy("cache_aware", {"cache_threshold": 1, "balance_rel_threshold": 2})
    assert params == {
        "cache_threshold": 1.0,
        "balance_abs_threshold": 64,
        "balance_rel_threshold": 2.0,
        "max_tree_size": 2**19,
        "chunk_chars": 32,
        "max_prompt_chars": 16384,
    }
    assert isinstance(params["cache_threshold"], float)
    assert validate_policy("cache_aware", params) == params  # idempotent
    assert set(POLICY_NAMES) == {
        "round_robin", "random", "power_of_two", "cache_aware",
        "consistent_hashing", "prefix_hash", "least_load",
    }  # fmt: skip
    for name in POLICY_NAMES:
        assert make_policy(name).name == name


# --- every policy, random inputs ------------------------------------------------------------

candidate_st = st.builds(
    Cand,
    id=st.sampled_from([f"w{i}" for i in range(12)]),
    priority=st.integers(-3, 3),
    cost=st.floats(0, 10, allow_nan=False),
    load=st.integers(0, 300),
)
facts_st = st.builds(
    RequestFacts,
    routing_key=st.none() | st.text(max_size=20),
    prompt=st.text(alphabet="ab c", max_size=300),
)


@settings(max_examples=60, deadline=None, database=None)
@given(
    calls=st.lists(
        st.tuples(st.lists(candidate_st, min_size=1, max_size=8), facts_st, st.booleans()),
        min_size=1,
        max_size=6,
    )
)
def test_every_policy_returns_a_valid_index(
    calls: list[tuple[list[Cand], RequestFacts, bool]],
) -> None:
    policies = [make_policy(name) for name in POLICY_NAMES]
    policies.append(make_policy("cache_aware", {"max_tree_size": 64, "chunk_chars": 4}))
    for cands, facts, forget in calls:
        cands = sorted({c.id: c for c in cands}.values(), key=lambda c: c.id)
        for policy in policies:
            index = policy.select(cands, facts)
            assert 0 <= index < len(cands)
            if forget:
                policy.forget(cands[0].id)
                policy.forget("unknown")
    for policy in policies:
        if isinstance(policy, CacheAwarePolicy):
            audit(policy.tree)


# --- token ids (gRPC workers: the gateway tokenized the prompt) ---------------------------


def test_prefix_policies_match_token_ids_over_text() -> None:
    """With ids, the text does not count: same ids, different text -> same worker; and a
    prompt extending a routed prefix of ids follows it."""
    ids = tuple(range(5, 205))
    for name in ("cache_aware", "prefix_hash"):
        policy = make_policy(name)
        cands = pool(4)
        first = policy.select(cands, RequestFacts(prompt="one text", prompt_ids=ids))
        other_text = RequestFacts(prompt="another text entirely", prompt_ids=ids)
        assert policy.select(cands, other_text) == first, name
        longer = RequestFacts(prompt="x", prompt_ids=(*ids, 9, 9, 9))
        assert policy.select(cands, longer) == first, name
    assert RequestFacts(prompt="abc", prompt_ids=(104, 105)).prompt_key(10) == "hi"
    assert RequestFacts(prompt="abcdef").prompt_key(3) == "abc"
