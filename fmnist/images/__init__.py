"""Images a layer below training and serving: reading an image file safely (`reading`) and
turning a photo into a model input (`preprocess`)."""
