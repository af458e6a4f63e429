import ArgumentParser
import CommandLineSupport
import Foundation
import Kafka
import Logging
import SwiftProtobuf
import VigilSchema
import Vision
import WorkerRuntime

struct SnapshotsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshots",
        abstract: "Export the redacted snapshots detect published (snapshots.v1).",
        subcommands: [Export.self]
    )

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the snapshots of snapshots.v1 to a folder as JPEG files.",
            discussion: """
                Only redacted images exist in vigil (detect masks faces or whole persons before it encodes a snapshot), so only those can be exported. Each file is named <camera>-<capture time in ms>.jpg; --boxes draws the detected objects' boxes on it (persons green, other classes orange). The dev cluster keeps only the newest 5 MiB of each partition, and snapshots.v1 has its own retention: older snapshots are gone.

                Every exported snapshot is audited: one SNAPSHOT_EXPORTED event per image on audit.events.v1, naming --actor and the file, acknowledged by the cluster before any file is written.

                Exit status: 0 exported (or nothing to export); 1 the cluster could not be read, the audit events not written, or the folder not written.
                """
        )

        @Argument(help: "The folder to write to (created if missing).")
        var directory: String

        @Option(help: "Only snapshots captured at or after this time (ISO 8601, e.g. 2026-11-30T08:00:00Z).")
        var since: String?

        @Option(help: "Only this camera's snapshots.")
        var camera: String?

        @Flag(help: "Draw the boxes of the objects detected in each frame (persons green, other classes orange).")
        var boxes = false

        @Option(help: "Operator account recorded as the exporter in the audit trail (default: $USER, else the login name).")
        var actor = ProcessInfo.processInfo.environment["USER"] ?? NSUserName()

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var logging: LoggingOptions

        func validate() throws {
            if let since, (try? Date(since, strategy: .iso8601)) == nil {
                throw ValidationError("--since must be an ISO 8601 time such as 2026-11-30T08:00:00Z, not \(since)")
            }
            guard !actor.isEmpty else { throw ValidationError("--actor must name the operator account exporting: every export is audited") }
        }

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.snapshots")
            let cluster = connection.configuration(clientID: "vigil-snapshots")
            let sinceMilliseconds = since.flatMap { try? Date($0, strategy: .iso8601) }.map { Int64($0.timeIntervalSince1970 * 1_000) } ?? .min
            let written = try await SnapshotsCommand.export(
                from: cluster, to: directory, since: sinceMilliseconds, camera: camera, drawingBoxes: boxes,
                auditedAs: SnapshotsCommand.Exporter(actor: actor, origin: "vigil snapshots export"), logger: logger
            )
            writeLine("exported \(TopologyOption.count(written, "redacted snapshot")) to \(directory)")
        }
    }
}

extension SnapshotsCommand {
    /// Who exports, for the audit trail.
    struct Exporter {
        /// The operator account.
        var actor: String
        /// The command: "vigil snapshots export" or "vigil up --snapshots".
        var origin: String
    }

    /// Writes the snapshots of snapshots.v1 captured at or after `since` (of `camera`, if given)
    /// to `directory` as `<camera>-<capture ms>.jpg`, after the cluster acknowledged one audit
    /// event per snapshot; how many it wrote.
    static func export(
        from cluster: KafkaConfiguration, to directory: String, since: Int64, camera: String?, drawingBoxes: Bool, auditedAs exporter: Exporter, logger: Logger
    ) async throws -> Int {
        let records: [KafkaConsumerMessage]
        do {
            records = try await KafkaTableReader.readPartitions(cluster: cluster, topic: "snapshots.v1", partitions: nil, logger: logger)
        } catch {
            writeError("vigil: cannot read snapshots.v1 from \(cluster.bootstrapServers): \(error)")
            throw ExitCode.failure
        }
        var selected: [Vigil_V1_Snapshot] = []
        for record in records {
            guard let snapshot = try? Vigil_V1_Snapshot(serializedBytes: record.value) else {
                writeError("vigil: snapshots.v1[\(record.partition)] offset \(record.offset) is not a snapshot; skipped")
                continue
            }
            guard snapshot.captureTime.milliseconds >= since, camera == nil || snapshot.cameraID == camera, !snapshot.redactedJpeg.isEmpty else { continue }
            selected.append(snapshot)
        }
        guard !selected.isEmpty else { return 0 }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let folder = URL(fileURLWithPath: directory).standardizedFileURL
        // Camera ids are restricted to [a-z0-9._-] by the cameras file: safe in a file name.
        func file(_ snapshot: Vigil_V1_Snapshot) -> URL {
            folder.appendingPathComponent("\(snapshot.cameraID)-\(snapshot.captureTime.milliseconds).jpg")
        }
        try await audit(selected.map { ($0, file($0).path) }, drawingBoxes: drawingBoxes, exporter: exporter, cluster: cluster, logger: logger)
        for snapshot in selected {
            let path = file(snapshot)
            do {
                let bytes = drawingBoxes ? try withBoxes(snapshot) : Array(snapshot.redactedJpeg)
                try Data(bytes).write(to: path)
            } catch {
                writeError("vigil: cannot write \(path.path): \(error)")
                throw ExitCode.failure
            }
        }
        return selected.count
    }

    /// One SNAPSHOT_EXPORTED event per snapshot, acknowledged before any file is written: an
    /// export the trail does not show never happens.
    static func audit(
        _ exports: [(snapshot: Vigil_V1_Snapshot, path: String)], drawingBoxes: Bool, exporter: Exporter, cluster: KafkaConfiguration, logger: Logger
    ) async throws {
        let exportID = UUID().uuidString.lowercased()
        let now = Date()
        let events = exports.map { snapshot, path in
            AuditEvents.event(
                id: "snapshot-export:\(exportID):\(snapshot.snapshotID)", kind: .snapshotExported, actor: exporter.actor,
                subject: "snapshot:\(snapshot.snapshotID)", cameraID: snapshot.cameraID,
                detail: "exported to \(path)\(drawingBoxes ? " with the detected objects' boxes drawn" : "")", origin: exporter.origin, at: now
            )
        }
        try await AuditEvents.send(events, cluster: cluster, logger: logger, consequence: "nothing was exported: every export is audited")
    }

    /// The snapshot's JPEG with its objects' boxes drawn (persons green, other classes orange).
    static func withBoxes(_ snapshot: Vigil_V1_Snapshot) throws -> [UInt8] {
        var image = try RGBImage(encoded: Array(snapshot.redactedJpeg))
        let (width, height) = (Float(image.width), Float(image.height))
        let thickness = max(2, image.width / 320)
        for object in snapshot.objects {
            let box = PixelBox(x0: object.box.xMin * width, y0: object.box.yMin * height, x1: object.box.xMax * width, y1: object.box.yMax * height)
            if object.classLabel == "person" {
                image.outline(box, thickness: thickness, red: 40, green: 220, blue: 60)
            } else {
                image.outline(box, thickness: thickness, red: 255, green: 150, blue: 0)
            }
        }
        return try image.jpeg(quality: 90)
    }
}
