"""The face model version a collection records and every face operation reports.

One constant for DescribeCollection/CreateCollection's ``FaceModelVersion`` and IndexFaces' and
ListFaces' ``IndexFacesModelVersion``. The botocore model constrains IndexFacesModelVersion to
``[0-9\\.]+`` (Rekognition answers "7.0"), so the version is numeric: "1.0" is rekface's face model
1: RetinaFace MobileNet-0.25 detection + 5 landmarks, dlib ResNet v1 embeddings of the 150 px chip,
flip-averaged, with the Similarity calibration of ``calibration.json``. Embeddings of different
versions are not comparable: a collection keeps the version it was created with.
"""

FACE_MODEL_VERSION = "1.0"
