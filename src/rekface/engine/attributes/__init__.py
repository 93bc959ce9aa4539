"""Face attributes for DetectFaces ALL and IndexFaces DetectionAttributes: one module per stage
(face-api 68 landmarks, age/gender and expressions; MediaPipe mesh and iris), fitted decisions in
``params.json``, run lazily by ``analyzer.AttributeAnalyzer``."""
