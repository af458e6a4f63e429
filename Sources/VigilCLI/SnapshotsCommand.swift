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
    /// event per snapshot; how many it wrote. The topic is read twice, streaming, so memory holds
    /// one record at a time whatever 30 days of JPEGs weigh: once to choose and audit (keeping
    /// only each choice's record position), once to write the chosen images.
    static func export(
        from cluster: KafkaConfiguration, to directory: String, since: Int64, camera: String?, drawingBoxes: Bool, auditedAs exporter: Exporter, logger: Logger
    ) async throws -> Int {
        let folder = URL(fileURLWithPath: directory).standardizedFileURL
        let choice = ExportChoice()
        do {
            try await KafkaTableReader.forEachRecord(cluster: cluster, topic: "snapshots.v1", partitions: nil, logger: logger) { record in
                guard let snapshot = try? Vigil_V1_Snapshot(serializedBytes: record.value) else {
                    writeError("vigil: snapshots.v1[\(record.partition)] offset \(record.offset) is not a snapshot; skipped")
                    return
                }
                guard snapshot.captureTime.milliseconds >= since, camera == nil || snapshot.cameraID == camera, !snapshot.redactedJpeg.isEmpty else { return }
                // Camera ids are restricted to [a-z0-9._-] by the cameras file: safe in a file name.
                let path = folder.appendingPathComponent("\(snapshot.cameraID)-\(snapshot.captureTime.milliseconds).jpg").path
                choice.choose(ExportChoice.Entry(partition: record.partition, offset: record.offset, snapshotID: snapshot.snapshotID, cameraID: snapshot.cameraID, path: path))
            }
        } catch {
            writeError("vigil: cannot read snapshots.v1 from \(cluster.bootstrapServers): \(error)")
            throw ExitCode.failure
        }
        let chosen = choice.entries
        guard !chosen.isEmpty else { return 0 }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try await audit(chosen, drawingBoxes: drawingBoxes, exporter: exporter, cluster: cluster, logger: logger)
        do {
            try await KafkaTableReader.forEachRecord(cluster: cluster, topic: "snapshots.v1", partitions: nil, logger: logger) { record in
                guard let entry = choice.entry(partition: record.partition, offset: record.offset),
                      let snapshot = try? Vigil_V1_Snapshot(serializedBytes: record.value) else { return }
                do {
                    let bytes = drawingBoxes ? try withBoxes(snapshot) : Array(snapshot.redactedJpeg)
                    try Data(bytes).write(to: URL(fileURLWithPath: entry.path))
                    choice.written(entry)
                } catch {
                    choice.failed(entry, error)
                }
            }
        } catch {
            writeError("vigil: cannot read snapshots.v1 from \(cluster.bootstrapServers) again to write the images: \(error)")
            throw ExitCode.failure
        }
        if let (entry, error) = choice.firstFailure {
            writeError("vigil: cannot write \(entry.path): \(error)")
            throw ExitCode.failure
        }
        let missing = chosen.count - choice.writtenCount
        if missing > 0 {
            writeError("vigil: \(missing) of \(chosen.count) audited snapshots left snapshots.v1 (retention) before they could be written")
        }
        return choice.writtenCount
    }

    /// The snapshots an export chose, by record position: no pixels are kept between the passes.
    final class ExportChoice: @unchecked Sendable {
        struct Entry: Sendable {
            var partition: Int32
            var offset: Int64
            var snapshotID: String
            var cameraID: String
            var path: String
        }

        private let lock = NSLock()
        private var chosen: [Entry] = []
        private var byPosition: [Int32: [Int64: Int]] = [:]
        private var writtenPositions: Set<Int> = []
        private var failure: (Entry, any Error)?

        func choose(_ entry: Entry) {
            lock.withLock {
                byPosition[entry.partition, default: [:]][entry.offset] = chosen.count
                chosen.append(entry)
            }
        }

        var entries: [Entry] { lock.withLock { chosen } }

        func entry(partition: Int32, offset: Int64) -> Entry? {
            lock.withLock { byPosition[partition]?[offset].map { chosen[$0] } }
        }

        func written(_ entry: Entry) {
            lock.withLock { if let index = byPosition[entry.partition]?[entry.offset] { writtenPositions.insert(index) } }
        }

        func failed(_ entry: Entry, _ error: any Error) {
            lock.withLock { if failure == nil { failure = (entry, error) } }
        }

        var writtenCount: Int { lock.withLock { writtenPositions.count } }
        var firstFailure: (Entry, any Error)? { lock.withLock { failure } }
    }

    /// One SNAPSHOT_EXPORTED event per snapshot, acknowledged before any file is written: an
    /// export the trail does not show never happens.
    static func audit(
        _ exports: [ExportChoice.Entry], drawingBoxes: Bool, exporter: Exporter, cluster: KafkaConfiguration, logger: Logger
    ) async throws {
        let exportID = UUID().uuidString.lowercased()
        let now = Date()
        let events = exports.map { export in
            AuditEvents.event(
                id: "snapshot-export:\(exportID):\(export.snapshotID)", kind: .snapshotExported, actor: exporter.actor,
                subject: "snapshot:\(export.snapshotID)", cameraID: export.cameraID,
                detail: "exported to \(export.path)\(drawingBoxes ? " with the detected objects' boxes drawn" : "")", origin: exporter.origin, at: now
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
