"""Models as the user meets them, a layer above training: the served photo classifier
(`classifier`, with `pyfunc`, the code MLflow logs with it) and the loader of any model
reference (`loading`)."""
