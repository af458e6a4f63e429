import ArgumentParser
import Foundation
import Kafka
import Logging
import SwiftProtobuf
import VigilSchema

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
                Only redacted images exist in vigil (detect masks faces or whole persons before it encodes a snapshot), so only those can be exported. Each file is named <camera>-<capture time in ms>.jpg. The dev cluster keeps only the newest 5 MiB of each partition, and snapshots.v1 has its own retention: older snapshots are gone.

                Exit status: 0 exported (or nothing to export); 1 the cluster could not be read or the folder written.
                """
        )

        @Argument(help: "The folder to write to (created if missing).")
        var directory: String

        @Option(help: "Only snapshots captured at or after this time (ISO 8601, e.g. 2026-11-30T08:00:00Z).")
        var since: String?

        @Option(help: "Only this camera's snapshots.")
        var camera: String?

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var logging: LoggingOptions

        func validate() throws {
            if let since, (try? Date(since, strategy: .iso8601)) == nil {
                throw ValidationError("--since must be an ISO 8601 time such as 2026-11-30T08:00:00Z, not \(since)")
            }
        }

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.snapshots")
            let cluster = connection.configuration(clientID: "vigil-snapshots")
            let sinceMilliseconds = since.flatMap { try? Date($0, strategy: .iso8601) }.map { Int64($0.timeIntervalSince1970 * 1_000) } ?? .min
            let written = try await SnapshotsCommand.export(from: cluster, to: directory, since: sinceMilliseconds, camera: camera, logger: logger)
            writeLine("exported \(TopologyOption.count(written, "redacted snapshot")) to \(directory)")
        }
    }
}

extension SnapshotsCommand {
    /// Writes the snapshots of snapshots.v1 captured at or after `since` (of `camera`, if given)
    /// to `directory` as `<camera>-<capture ms>.jpg`; how many it wrote.
    static func export(from cluster: KafkaConfiguration, to directory: String, since: Int64, camera: String?, logger: Logger) async throws -> Int {
        let records: [KafkaConsumerMessage]
        do {
            records = try await KafkaTableReader.readPartitions(cluster: cluster, topic: "snapshots.v1", partitions: nil, logger: logger)
        } catch {
            writeError("vigil: cannot read snapshots.v1 from \(cluster.bootstrapServers): \(error)")
            throw ExitCode.failure
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var written = 0
        for record in records {
            guard let snapshot = try? Vigil_V1_Snapshot(serializedBytes: record.value) else {
                writeError("vigil: snapshots.v1[\(record.partition)] offset \(record.offset) is not a snapshot; skipped")
                continue
            }
            let captured = snapshot.captureTime.milliseconds
            guard captured >= since, camera == nil || snapshot.cameraID == camera, !snapshot.redactedJpeg.isEmpty else { continue }
            // Camera ids are restricted to [a-z0-9._-] by the cameras file: safe in a file name.
            let path = (directory as NSString).appendingPathComponent("\(snapshot.cameraID)-\(captured).jpg")
            do {
                try snapshot.redactedJpeg.write(to: URL(fileURLWithPath: path))
            } catch {
                writeError("vigil: cannot write \(path): \(error)")
                throw ExitCode.failure
            }
            written += 1
        }
        return written
    }
}
