"""Evaluation: benchmark metrics (Err_post, Err_resim) and calibration diagnostics."""
