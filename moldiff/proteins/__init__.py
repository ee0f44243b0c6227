"""moldiff.proteins"""
