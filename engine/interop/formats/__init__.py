"""Export writers, one module per format; each writes `ExportImage`s into an `ExportSink`
(`engine.interop.records`)."""
