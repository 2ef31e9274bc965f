"""Adversarial generative models: GAN, DCGAN and their conditional versions, and the GAN losses."""
