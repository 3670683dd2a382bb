"""The layout of the graph of batches: layers from the longest chain, edges left to right."""

from __future__ import annotations

from qaflow.web import dag
from qaflow.web.dag import GAP_X, WIDTH, draw, layers


def counts(**per_status: int) -> dict[str, int]:
    return dict(per_status)


def test_a_batch_sits_one_layer_right_of_the_longest_chain_it_needs() -> None:
    edges = [("a", "b"), ("b", "c"), ("a", "c"), ("x", "c")]
    assert layers(["a", "x", "b", "c"], edges) == {"a": 0, "x": 0, "b": 1, "c": 2}


def test_every_edge_goes_left_to_right_and_nodes_do_not_overlap() -> None:
    batches = {name: counts(succeeded=2) for name in ["a", "b", "c", "d", "e"]}
    edges = [("a", "c"), ("b", "c"), ("c", "d"), ("a", "e")]
    drawing = draw(batches, edges)
    at = {node.name: (node.x, node.y) for node in drawing.nodes}
    for up, down in edges:
        assert at[up][0] + WIDTH + GAP_X <= at[down][0]
    boxes = sorted(at.values())
    assert len(set(boxes)) == len(boxes)
    assert drawing.width >= max(x for x, _ in boxes) + WIDTH
    assert [e.path.startswith(f"M{at[e.upstream][0] + WIDTH},") for e in drawing.edges] == [
        True
    ] * 4


def test_a_cycle_in_recorded_edges_does_not_loop() -> None:
    assert layers(["a", "b"], [("a", "b"), ("b", "a")]) == {"a": 1, "b": 0}
    drawing = draw({"a": counts(pending=1), "b": counts(pending=1)}, [("a", "b"), ("b", "a")])
    assert {node.name for node in drawing.nodes} == {"a", "b"}


def test_states_and_bars_follow_the_counts() -> None:
    drawing = draw(
        {
            "ok": counts(succeeded=3, cached=1),
            "busy": counts(succeeded=1, running=1, pending=2),
            "bad": counts(failed=1, errored=1, succeeded=2),
            "later": counts(pending=4),
            "mixed": counts(succeeded=1, skipped=1),
        },
        [],
    )
    by_name = {node.name: node for node in drawing.nodes}
    assert {name: node.state for name, node in by_name.items()} == {
        "ok": "done",
        "busy": "running",
        "bad": "failed",
        "later": "waiting",
        "mixed": "partial",
    }
    assert not drawing.done
    bars = by_name["bad"].bars
    assert [word for word, _, _ in bars] == ["done", "failed"]
    assert bars[0][2] == bars[1][2] == (WIDTH - 20) / 2  # 2 done, 2 failed (errored counts)
    assert by_name["busy"].summary == "1 done, 1 running, 2 waiting"
    assert draw({"ok": counts(succeeded=1)}, []).done


def test_segments_cover_the_words_of_qa_status() -> None:
    assert set(dag.SEGMENTS) | {"waiting"} == set(dag.words({})) - {"total"}


def test_pipeline_steps_link_to_their_batch() -> None:
    drawing = draw(
        {"pipe step 1": counts(pending=1), "work": counts(pending=2), "pipe step 3": counts()},
        [("pipe step 1", "work"), ("work", "pipe step 3")],
        batches=["pipe", "work"],
    )
    assert [(n.name, n.batch) for n in drawing.nodes] == [
        ("pipe step 1", "pipe"),
        ("work", "work"),
        ("pipe step 3", "pipe"),
    ]
    assert [n.x for n in drawing.nodes] == sorted(n.x for n in drawing.nodes)  # a chain
