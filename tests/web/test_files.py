"""Which paths the board serves: regular files under the storage folder, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from qaflow.web.files import Refused, kind_of, list_outputs, media_type, safe_path


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    root = tmp_path / "storage"
    (root / "runs" / "b" / "r1").mkdir(parents=True)
    (root / "runs" / "b" / "r1" / "out.png").write_bytes(b"png")
    (tmp_path / "secret.txt").write_text("secret")
    return root


@pytest.mark.parametrize(
    "path",
    [
        "../secret.txt",
        "runs/../../secret.txt",
        "runs/b/../../../secret.txt",
        "/etc/passwd",
        "runs//b/r1/out.png",
        "./runs/b/r1/out.png",
        "runs\\..\\..\\secret.txt",
        "runs/b/r1/out.png\0",
        "",
    ],
)
def test_paths_that_climb_or_are_absolute_are_refused(storage: Path, path: str) -> None:
    with pytest.raises(Refused) as refused:
        safe_path(storage, path)
    assert refused.value.status == 403


def test_a_symlink_out_of_storage_is_refused_and_not_listed(storage: Path) -> None:
    run = storage / "runs" / "b" / "r1"
    (run / "leak.txt").symlink_to(storage.parent / "secret.txt")
    (run / "inside.png").symlink_to(run / "out.png")
    with pytest.raises(Refused) as refused:
        safe_path(storage, "runs/b/r1/leak.txt")
    assert refused.value.status == 403
    assert safe_path(storage, "runs/b/r1/inside.png") == (run / "out.png").resolve()
    listed, truncated = list_outputs(storage, run)
    assert [f.name for f in listed] == ["inside.png", "out.png"] and not truncated


def test_a_storage_folder_reached_through_a_symlink_still_serves(
    tmp_path: Path, storage: Path
) -> None:
    link = tmp_path / "link"
    link.symlink_to(storage)
    assert safe_path(link, "runs/b/r1/out.png").read_bytes() == b"png"


def test_missing_files_and_folders_are_404(storage: Path) -> None:
    for path in ("runs/b/r1/nope.png", "runs/b/r1", "%2e%2e/secret.txt"):
        with pytest.raises(Refused) as refused:
            safe_path(storage, path)
        assert refused.value.status == 404


def test_a_run_directory_outside_storage_lists_nothing(tmp_path: Path, storage: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "a.png").write_bytes(b"x")
    assert list_outputs(storage, elsewhere) == ([], False)


def test_listing_quotes_names_for_urls(storage: Path) -> None:
    run = storage / "runs" / "b" / "r1"
    (run / "sub dir").mkdir()
    (run / "sub dir" / "a#b?.json").write_text("{}")
    listed, _ = list_outputs(storage, run)
    assert [(f.name, f.url_path, f.kind) for f in listed] == [
        ("out.png", "runs/b/r1/out.png", "image"),
        ("sub dir/a#b?.json", "runs/b/r1/sub%20dir/a%23b%3F.json", "json"),
    ]


def test_kinds_and_media_types() -> None:
    assert [kind_of(n) for n in ("a.PNG", "p.plotly.json", "d.json", "l.log", "x.bin")] == [
        "image",
        "plotly",
        "json",
        "text",
        "other",
    ]
    assert media_type(Path("page.html")) == "text/plain; charset=utf-8"  # never rendered
    assert media_type(Path("a.jpg")) == "image/jpeg"
    assert media_type(Path("a.exe")) == "application/octet-stream"
