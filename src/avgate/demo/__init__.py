"""The built-in demo: a synthetic AVE-style audio-visual dataset and a stand-in pretrained
WavLM with random weights, written by the `demo_data` and `demo_encoder` stages."""
