"""What each target is: TensorFlow releases, their op registries, and the consumers that pin them."""
