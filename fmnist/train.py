"""`python -m fmnist.train [experiment=NAME] [key=value ...]`: train one model as one MLflow run
(fmnist/training/run.py)."""

from fmnist import cli

main = cli.entry("train", "fmnist.training.run:train")

if __name__ == "__main__":
    main()
