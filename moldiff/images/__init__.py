"""moldiff.images"""
