"""The HTML report draws the plan graph coloured by outcome."""



def test_html_report_has_the_plan_graph_coloured_by_outcome(registry, tmp_path, monkeypatch):
    """A real run through the executor; the HTML carries the plan as SVG (or DOT without Graphviz)."""
    import shutil

    from opsbook.api import RunRequest, load_inventory_sources, load_runbook, make_plan, start_run
    from opsbook.execute import RunOptions
    from opsbook.journal import Journal
    from opsbook.report import build_report

    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))
    rb_path = tmp_path / "rb.yaml"
    rb_path.write_text("opsbook: 1\nname: g\nsteps:\n  - {name: good, local.noop: {}}\n"
                       "  - {name: bad, local.fail: boom}\n")
    journal = Journal(tmp_path / "j.db")
    plan = make_plan(load_runbook(str(rb_path), registry), load_inventory_sources([]), {})
    summary = start_run(plan, registry, journal, RunRequest(options=RunOptions()))
    html = build_report(journal, summary.run_id, "html")
    assert "Plan graph, coloured by outcome" in html
    if shutil.which("dot"):
        graph = html[html.index('<div class="plan-graph">'):]
        assert "#d1383d" in graph and "#2e9e4f" in graph  # the failed and the ok step
    else:
        assert "digraph plan" in html
