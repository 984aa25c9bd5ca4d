"""iter_json writes exactly json.dumps' text in pieces; loads_record reads exactly json.loads'
value with shared leaf metadata."""

import json
import random
from pathlib import Path

import pytest

from archiver_resources.fhicl import fhicl_to_record, iter_json, loads_record, parse_fhicl

DATA = Path(__file__).parent / "data"


def random_value(rng, depth=0):
    choice = rng.random()
    if depth > 5 or choice < 0.3:
        return rng.choice(["", "x", "ünï\u2713", 'q"\\\n', 0, -7, 2.5, 1e300, True, False, None])
    if choice < 0.65:
        return {rng.choice(["a", "b", "ç", "k" + str(rng.randint(0, 50))]): random_value(rng, depth + 1)
                for _ in range(rng.randint(0, 12))}
    return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 12))]


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("piece_nodes", [1, 3, 50])
def test_pieces_join_to_json_dumps(seed, piece_nodes):
    value = random_value(random.Random(seed))
    pieces = list(iter_json(value, piece_nodes=piece_nodes))
    assert "".join(pieces) == json.dumps(value, ensure_ascii=False)


def test_a_big_record_comes_in_many_small_pieces():
    text = "".join(f"t{i}: {{ channel: {i} enabled: true gain: 1.{i:04d} }}\n" for i in range(3000))
    record = fhicl_to_record("BEGIN_PROLOG\np: [1, 2]\nEND_PROLOG\n" + text, "big",
                             timestamp="2024-01-01T00:00:00.000+0000")
    pieces = list(iter_json(record, piece_nodes=256))
    assert "".join(pieces) == json.dumps(record, ensure_ascii=False)
    assert len(pieces) > 20 and max(map(len, pieces)) < len("".join(pieces)) / 10


def test_non_string_keys_and_tuples_follow_json_dumps():
    value = {"a": [(1, 2), {3: "x", None: [4] * 10}], "b": list(range(30))}
    assert "".join(iter_json(value, piece_nodes=2)) == json.dumps(value, ensure_ascii=False)


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.fcl")))
def test_loads_record_equals_json_loads_and_shares_leaf_metadata(name):
    parsed = parse_fhicl((DATA / name).read_text(encoding="utf-8"), name)
    text = json.dumps({"document": {"data": parsed.data, "metadata": parsed.metadata}})
    loaded = loads_record(text)
    assert loaded == json.loads(text)
    assert json.dumps(loaded) == text
    leaves = []
    stack = list(loaded["document"]["metadata"].values())
    while stack:
        node = stack.pop()
        for child in node.get("children", {}).values():
            (stack if "children" in child else leaves).append(child)
    assert len({id(leaf) for leaf in leaves}) == len({json.dumps(leaf) for leaf in leaves})
    assert len(leaves) > 2 * len({id(leaf) for leaf in leaves})


def test_loads_record_keeps_key_order_and_unshareable_values():
    text = ('[{"type": "number", "comment": "", "annotation": ""},'
            ' {"type": "number", "comment": "", "annotation": ""},'
            ' {"type": "number", "annotation": "", "comment": ""},'
            ' {"type": "table", "comment": "", "children": {}},'
            ' {"type": "table", "comment": "", "children": {}}]')
    a, b, c, d, e = loads_record(text)
    assert a is b and a == c and a is not c and list(c) == ["type", "annotation", "comment"]
    assert d is not e and d == e


def test_loads_record_shares_short_values_of_objects_only():
    text = '[{"a": "true", "b": "12345678"}, {"a": "true", "b": "12345678"}, ["true"]]'
    first, second, seq = loads_record(text)
    assert first == second == {"a": "true", "b": "12345678"} and first is not second
    assert first["a"] is second["a"] and seq == ["true"]
