"""`python -m fmnist.finetune photos=DIR [model=best|none|REF|imagenet:NAME] [validation=DIR2] [key=value ...]`:
train a classifier of the user's own classes on their labelled photos, as one MLflow run, and
register it as a new version of `finetune.registered_model` (fmnist/photos/finetuning.py).

`model=` names the Fashion-MNIST model to start from (`finetune.base`; `imagenet:NAME`: a
keras.applications network with ImageNet weights; `none`: from scratch);
the photo sweep (`python -m fmnist.sweep experiment=finetune photos=DIR`) searches the same
settings and registers its best trial the same way."""

from fmnist import cli

main = cli.entry("finetune", "fmnist.photos.finetuning:finetune")

if __name__ == "__main__":
    main()
