"""The report: finished runs laid out as the paper's Tables 1-3 and the controls (our numbers beside
the paper's), the paper's claims with verdicts, summary.md and the figures.

    runs.py        run folders, read through fer_ablation.records, checked and matched to a configuration
    grouping.py    data groups and cells (one configuration's runs, one per seed)
    statistics.py  the numbers of each table row (methods: fer_ablation.statistics): the seed-level verdict, Holm, diagnostics
    claims.py      the paper's claims tested over seeds (claims.md / claims.csv)
    render.py      Markdown, LaTeX, CSV and summary.md
    figures.py     training curves and confusion matrices
    tables.py      collect(): all of the above, from run folders to files
    cli.py         python -m fer_ablation.collect
"""
