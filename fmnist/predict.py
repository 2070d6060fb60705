"""`python -m fmnist.predict model=REF images=PATH [output=FILE] [sheet=FILE.png]`: classify
photos with a trained model (fmnist/photos/predicting.py).

Every image ends as one row: a prediction, or the reason it could not be read. A bad file
costs one line on stderr, never the run: exit 0 when at least one image was classified,
1 when none was (or no model), 2 for usage errors."""

from fmnist import cli

main = cli.entry("predict", "fmnist.photos.predicting:predict")

if __name__ == "__main__":
    main()
