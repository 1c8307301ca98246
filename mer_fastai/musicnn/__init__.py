"""musicnn in PyTorch: the MSD and MTT taggers of Pons & Serra (ISMIR 2019 LBD), weights read without TensorFlow."""
