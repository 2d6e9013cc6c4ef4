"""Beams and restore: the clean beam, the restored images, the VLA primary beam."""
