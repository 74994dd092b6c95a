"""genlab.train"""
