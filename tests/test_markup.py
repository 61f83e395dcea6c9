"""Text from a store or a path is data, never Rich markup (issue 46, case 3): an experiment
whose folder holds a closing tag, and stored presets, configuration fingerprints, devices
and errors holding tags, are printed as they are by report, compare, plot and store check,
which finish without a traceback."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from cli_checks import run_main
from stores import comparison_store, write_bench, write_scaling

TAGS = {"preset": "p[red]q", "config_fingerprint": "c[/x]", "device": "d[/]e", "node": "[bold]n",
        "implementation": "i[/i]", "error": "[/error]"}  # fmt: skip


def marked_store(root: Path) -> None:
    """A comparison store with a bench and a scaling study at ``root`` whose tables hold
    :data:`TAGS`."""
    store, _ = comparison_store(root)
    write_bench(store)
    write_scaling(store)
    for table in ("runs", "tasks", "bench", "scaling"):
        for path in store.files(table):
            data = pq.read_table(path)
            for name, text in TAGS.items():
                if name in data.column_names:
                    at = data.column_names.index(name)
                    if name == "config_fingerprint":  # one text per configuration still
                        values = [f"{v}{text}" for v in data.column(name).to_pylist()]
                    elif name == "error":  # failed runs only
                        values = [v and text for v in data.column(name).to_pylist()]
                    else:
                        values = [text] * data.num_rows
                    data = data.set_column(at, name, pa.array(values, data.schema.field(name).type))
            pq.write_table(data, path)


def test_markup_in_stored_text_and_paths_is_printed_as_it_is(tmp_path: Path) -> None:
    root = tmp_path / "outputs" / "x[" / "e[/]"  # the experiment's folder closes a tag
    marked_store(root)
    wide = {"COLUMNS": "500"}
    every = run_main("report", "-e", str(root), env=wide, cwd=tmp_path)
    assert every.returncode == 0, every.stderr[-3000:]
    assert "e[/]" in every.stdout and "p[red]q" in every.stdout
    runs = run_main("report", "-e", str(root), "--table", "runs", env=wide, cwd=tmp_path)
    assert runs.returncode == 0, runs.stderr[-3000:]
    assert "p[red]q" in runs.stdout and "[/error]" in runs.stdout
    for table in ("bench", "scaling"):
        shown = run_main("report", "-e", str(root), "--table", table, env=wide, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr[-3000:]
        assert "d[/]e" in shown.stdout and (table != "bench" or "i[/i]" in shown.stdout)
    fingerprints = sorted(
        {v for p in root.glob("runs/*.parquet") for v in pq.read_table(p)["config_fingerprint"]
         .to_pylist() if v.startswith(("71f9", "e33e"))}
    )  # fmt: skip
    assert len(fingerprints) == 2
    paired = run_main("compare", "-e", str(root), *fingerprints, env=wide, cwd=tmp_path)
    assert paired.returncode == 0, paired.stderr[-3000:]
    assert "c[/x]" in paired.stdout and "e[/]" not in paired.stderr
    drawn = run_main("plot", "-e", str(root), env=wide, cwd=tmp_path)
    assert drawn.returncode == 0, drawn.stderr[-3000:]
    assert "e[/]" in drawn.stdout
    checked = run_main("store", "check", str(root), env=wide, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "e[/]" in checked.stdout
