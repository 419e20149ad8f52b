"""Making the expression model: the network, the FER2013 folders, training, the calibration
fitted on validation faces, evaluation and the conversion to the .tflite the pipeline runs.
Nothing here runs while annotating; the pipeline's half is `fer_video.expression` itself
(labels, preprocess, classify)."""
