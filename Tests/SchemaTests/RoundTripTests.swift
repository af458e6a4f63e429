import Foundation
import SwiftProtobuf
import Testing
import VigilSchema

/// Messages as the workers will fill them, checked through both wire formats: binary (Kafka
/// records) and JSON (console, webhooks, `vigil alerts show`).
@Suite("Round trips")
struct RoundTripTests {
    static let capture = Google_Protobuf_Timestamp(seconds: 1_796_000_000, nanos: 250_000_000)

    /// Binary and JSON round trips must both give back an equal message.
    func expectRoundTrips<M: SwiftProtobuf.Message & Equatable>(_ message: M, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let binary: Data = try message.serializedBytes()
        #expect(!binary.isEmpty, sourceLocation: sourceLocation)
        #expect(try M(serializedBytes: binary) == message, "binary round trip", sourceLocation: sourceLocation)
        let json = try message.jsonString()
        #expect(try M(jsonString: json) == message, "JSON round trip", sourceLocation: sourceLocation)
    }

    @Test("VideoChunk: a decoder can start from the codec parameters in any chunk")
    func videoChunk() throws {
        // SPS and PPS of an x264 High-profile 1280×720 stream, Annex B.
        let spsPPS: [UInt8] = [
            0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1F, 0xAC, 0xD9, 0x40, 0x50, 0x05, 0xBB, 0x01, 0x10,
            0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xC0, 0xF1, 0x83, 0x19, 0x60,
            0, 0, 0, 1, 0x68, 0xEB, 0xE3, 0xCB, 0x22, 0xC0,
        ]
        var chunk = Vigil_V1_VideoChunk()
        chunk.cameraID = "dock-north-1"
        chunk.sequence = 48_211
        chunk.captureTime = Self.capture
        chunk.discontinuity = true
        chunk.codec.codecName = "h264"
        chunk.codec.width = 1280
        chunk.codec.height = 720
        chunk.codec.extradata = Data(spsPPS)
        chunk.codec.timeBase = .with { $0.numerator = 1; $0.denominator = 90_000 }
        chunk.packets = (0..<3).map { index in
            .with {
                $0.data = Data([0, 0, 0, 1, index == 0 ? 0x65 : 0x41] + Array(repeating: UInt8(index), count: 64))
                $0.pts = 3_600 * Int64(index) + 7_200
                $0.dts = 3_600 * Int64(index)
                $0.duration = 3_600
                $0.keyframe = index == 0
            }
        }
        try expectRoundTrips(chunk)

        let decoded = try Vigil_V1_VideoChunk(serializedBytes: chunk.serializedBytes() as Data)
        #expect(decoded.codec.extradata == Data(spsPPS))
        #expect(decoded.packets.map(\.keyframe) == [true, false, false])
        #expect(decoded.packets.last?.pts == 14_400)
    }

    @Test("Frame: pixels, format and the mask version applied")
    func frame() throws {
        var frame = Vigil_V1_Frame()
        frame.cameraID = "dock-north-1"
        frame.sequence = 1_204_553
        frame.captureTime = Self.capture
        frame.width = 4
        frame.height = 2
        frame.pixelFormat = .yuv420P
        frame.data = Data((0..<12).map { UInt8($0 * 20) }) // 4×2 luma + 2×1 U + 2×1 V
        frame.privacyMaskVersion = 7
        frame.keyframeOnly = true
        try expectRoundTrips(frame)
        #expect(try frame.jsonString().contains("\"pixelFormat\":\"PIXEL_FORMAT_YUV420P\""))
    }

    @Test("FrameDetections: objects with posture, motion, tamper, redaction count")
    func frameDetections() throws {
        var detections = Vigil_V1_FrameDetections()
        detections.cameraID = "platform-2"
        detections.frameSequence = 88_001
        detections.captureTime = Self.capture
        detections.motionRegions = [.with { $0.xMin = 0.1; $0.yMin = 0.2; $0.xMax = 0.35; $0.yMax = 0.9 }]
        detections.objects = [
            .with {
                $0.classLabel = "person"
                $0.score = 0.93
                $0.box = .with { $0.xMin = 0.12; $0.yMin = 0.55; $0.xMax = 0.4; $0.yMax = 0.8 }
                $0.trackID = 17
                $0.posture = .lying
            },
            .with {
                $0.classLabel = "bag"
                $0.score = 0.61
                $0.box = .with { $0.xMin = 0.7; $0.yMin = 0.7; $0.xMax = 0.76; $0.yMax = 0.8 }
                $0.trackID = 18
            },
        ]
        detections.tamperSignals = [.with { $0.kind = .defocused; $0.score = 0.4 }]
        detections.redactedRegionCount = 1
        try expectRoundTrips(detections)

        let json = try detections.jsonString()
        #expect(json.contains("\"posture\":\"POSTURE_LYING\""))
        #expect(json.contains("\"trackId\":\"17\""), "uint64 is a string in proto3 JSON")
    }

    @Test("Snapshot and CameraConfig: the redaction policy travels with the image and the camera")
    func snapshotAndCameraConfig() throws {
        let policy = Vigil_V1_RedactionPolicy.with {
            $0.target = .wholePersons
            $0.fill = .coarseMosaic
            $0.version = 3
        }
        var snapshot = Vigil_V1_Snapshot()
        snapshot.snapshotID = "6f1c2a9e0b7d4c3a8e5f1b2d3c4a5e6f"
        snapshot.cameraID = "platform-2"
        snapshot.frameSequence = 88_001
        snapshot.captureTime = Self.capture
        snapshot.redactedJpeg = Data([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 0x4A, 0x46, 0x49, 0x46, 0x00, 0xFF, 0xD9])
        snapshot.redactionPolicy = policy
        snapshot.maskedRegionCount = 2
        try expectRoundTrips(snapshot)

        var config = Vigil_V1_CameraConfig()
        config.cameraID = "platform-2"
        config.sourceURL = "rtsp://10.0.4.12:554/stream1"
        config.privacyMasks = [
            .with {
                $0.maskID = "neighbour-window"
                $0.area.vertices = [(0.0, 0.0), (0.2, 0.0), (0.2, 0.3), (0.0, 0.3)].map { point in
                    .with { $0.x = Float(point.0); $0.y = Float(point.1) }
                }
            },
        ]
        config.redactionPolicy = policy
        config.sampling.keyframesOnly = .init()
        config.version = 12
        config.updatedBy = "ops-admin-anna"
        config.updatedTime = Self.capture
        config.approvedBy = ["ops-admin-ben"]
        try expectRoundTrips(config)
        #expect(try Vigil_V1_CameraConfig(serializedBytes: config.serializedBytes() as Data).sampling.rate == .keyframesOnly(.init()))
    }

    @Test("Rule: oneof geometry and typed parameters survive")
    func rule() throws {
        var rule = Vigil_V1_Rule()
        rule.ruleID = "platform-2-edge"
        rule.kind = .lineCrossing
        rule.cameraIds = ["platform-2"]
        rule.cameraSelector = ["site": "north"]
        rule.line = .with {
            $0.start = .with { $0.x = 0.05; $0.y = 0.8 }
            $0.end = .with { $0.x = 0.95; $0.y = 0.75 }
        }
        rule.lineCrossing = .with {
            $0.objects = .with { $0.classLabels = ["person"]; $0.minScore = 0.5 }
            $0.direction = .forward
        }
        rule.schedule = .with {
            $0.timeZone = "Europe/Berlin"
            $0.windows = [.with { $0.day = .saturday; $0.startMinute = 22 * 60; $0.endMinute = 24 * 60 }]
        }
        rule.severity = .critical
        rule.version = 4
        rule.author = "ops-admin-anna"
        rule.enabled = true
        rule.purpose = "Nobody on the track side of the platform edge at night"
        try expectRoundTrips(rule)

        let decoded = try Vigil_V1_Rule(jsonString: rule.jsonString())
        guard case .line(let line)? = decoded.geometry, case .lineCrossing(let parameters)? = decoded.parameters else {
            Issue.record("geometry or parameters lost: \(decoded)")
            return
        }
        #expect(line.end.x == 0.95)
        #expect(parameters.direction == .forward)

        var dwell = rule
        dwell.kind = .hazardDwell
        dwell.zone = .with { $0.vertices = [.with { $0.x = 0.1 }, .with { $0.x = 0.5 }, .with { $0.y = 0.5 }] }
        dwell.hazardDwell = .with { $0.dwell = .init(seconds: 90) }
        #expect(dwell.geometry == .zone(dwell.zone), "setting the zone replaces the line")
        try expectRoundTrips(dwell)
    }

    @Test("Incident, Alert and AlertAction carry ids, rule version and lifecycle")
    func incidentAndAlert() throws {
        var incident = Vigil_V1_Incident()
        incident.incidentID = "9b2f4c61d0a84e7f3c5b1a2d6e8f0c4b"
        incident.ruleID = "platform-2-edge"
        incident.ruleVersion = 4
        incident.kind = .lineCrossing
        incident.cameraID = "platform-2"
        incident.severity = .critical
        incident.windowStart = Self.capture
        incident.windowEnd = Google_Protobuf_Timestamp(seconds: Self.capture.seconds + 3, nanos: 0)
        incident.trackIds = [17, 23]
        incident.snapshot.record = .with { $0.topic = "snapshots.v1"; $0.partition = 5; $0.offset = 120_044 }
        incident.summary = "2 persons crossed the platform edge"
        try expectRoundTrips(incident)

        var alert = Vigil_V1_Alert()
        alert.alertID = "alert-\(incident.incidentID)"
        alert.incident = incident
        alert.state = .acknowledged
        alert.assignee = "ops-duty-carla"
        alert.createdTime = incident.windowEnd
        alert.updatedTime = Google_Protobuf_Timestamp(seconds: incident.windowEnd.seconds + 40, nanos: 0)
        alert.acknowledgedTime = alert.updatedTime
        alert.revision = 2
        try expectRoundTrips(alert)
        #expect(try alert.jsonString().contains("\"state\":\"ALERT_STATE_ACKNOWLEDGED\""))

        let action = Vigil_V1_AlertAction.with {
            $0.alertID = alert.alertID
            $0.action = .escalate
            $0.actor = "ops-duty-carla"
            $0.note = "train approaching, calling station staff"
            $0.actionTime = alert.updatedTime
            $0.idempotencyKey = "console-5c1d-0007"
            $0.expectedRevision = 2
        }
        try expectRoundTrips(action)
    }

    @Test("AuditRecord keeps the exact bytes of its event")
    func auditRecord() throws {
        let event = Vigil_V1_AuditEvent.with {
            $0.eventID = "console-5c1d-0008"
            $0.kind = .privacyChangeApproved
            $0.actor = "ops-admin-anna"
            $0.subject = "camera:platform-2"
            $0.cameraID = "platform-2"
            $0.detail = "privacy mask neighbour-window removed"
            $0.eventTime = Self.capture
            $0.approvers = ["ops-admin-ben"]
            $0.origin = "vigil cameras apply"
        }
        let eventBytes: Data = try event.serializedBytes()
        let record = Vigil_V1_AuditRecord.with {
            $0.sequence = 41
            $0.previousHash = Data(repeating: 0xAB, count: 32)
            $0.hash = Data(repeating: 0xCD, count: 32)
            $0.serializedEvent = eventBytes
            $0.recordedTime = Self.capture
        }
        try expectRoundTrips(record)
        try expectRoundTrips(event)
        let decoded = try Vigil_V1_AuditRecord(jsonString: record.jsonString())
        #expect(decoded.serializedEvent == eventBytes)
        #expect(try Vigil_V1_AuditEvent(serializedBytes: decoded.serializedEvent) == event)
    }

    @Test("CameraHealth round trips, and an older reader keeps fields it does not know")
    func cameraHealthForwardCompatible() throws {
        let health = Vigil_V1_CameraHealth.with {
            $0.cameraID = "dock-north-1"
            $0.state = .stalled
            $0.reason = "no packets for 12 s"
            $0.observedTime = Self.capture
            $0.lastFrameTime = Google_Protobuf_Timestamp(seconds: Self.capture.seconds - 12, nanos: 0)
        }
        try expectRoundTrips(health)

        // A newer writer added field 100 (varint 1): this reader must pass it on unchanged.
        var bytes: Data = try health.serializedBytes()
        bytes.append(contentsOf: [0xA0, 0x06, 0x01])
        let decoded = try Vigil_V1_CameraHealth(serializedBytes: bytes)
        #expect(decoded.state == .stalled)
        #expect(try decoded.serializedBytes() as Data == bytes)
    }
}
