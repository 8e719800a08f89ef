"""INT8 (Q/DQ) calibration and FP16 typing of exported graphs."""
