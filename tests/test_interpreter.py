"""The interpreter-wide switches: the collector paused, frozen and restored as documented."""

from __future__ import annotations

import gc

from qaflow import interpreter


def test_a_paused_collector_is_frozen_and_resumed_then_restored():
    try:
        interpreter.pause_gc()
        assert not gc.isenabled()
        interpreter.freeze_planned()
        assert gc.isenabled() and gc.get_freeze_count() > 0
        interpreter.restore_gc()
        assert gc.isenabled() and gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
        gc.enable()


def test_a_program_with_the_collector_on_has_nothing_frozen():
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    interpreter.freeze_planned()
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_resume_turns_the_collector_back_on():
    try:
        interpreter.pause_gc()
        interpreter.resume_gc()
        assert gc.isenabled()
    finally:
        gc.enable()


def test_gc_paused_blocks_overlap_and_leave_the_collector_as_it_was():
    import threading

    assert gc.isenabled()
    inside, release = threading.Event(), threading.Event()

    def other_block():
        with interpreter.gc_paused():
            inside.set()
            release.wait(60)

    thread = threading.Thread(target=other_block)
    with interpreter.gc_paused():
        assert not gc.isenabled()
        thread.start()
        assert inside.wait(60)
    assert not gc.isenabled()  # the other thread's block is still under way
    release.set()
    thread.join(60)
    assert gc.isenabled()
    try:
        gc.disable()  # a paused collector (a `qa` command) stays paused
        with interpreter.gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
