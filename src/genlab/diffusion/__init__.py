"""genlab.diffusion"""
