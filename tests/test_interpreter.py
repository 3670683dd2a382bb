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
