"""`python -m fmnist.sweep [experiment=NAME] [key=value ...]`: the product's main job.

A keras-tuner search over the space in `conf/search/`, one MLflow parent run per sweep
and one nested child run per trial; the best trial that does not overfit is registered, and
the `best` alias moves to it if it beats the holder. Rerunning the same command resumes an
interrupted sweep (fmnist/kinds/ picks the kind of sweep, fmnist/search/sweeping.py runs it)."""

from fmnist import cli

main = cli.entry("sweep", "fmnist.kinds:sweep")

if __name__ == "__main__":
    main()
