"""Studies: several training runs under one budget, compared in one table (``make compare``,
``make study STUDY=focal``). A study is a YAML file in ``conf/study/``; each of its cells is a
set of training overrides, run as one job of a Hydra multirun."""
