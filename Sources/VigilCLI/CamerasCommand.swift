import ArgumentParser
import Cameras
import DeclarationFiles
import Foundation
import Kafka
import Logging
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

struct CamerasCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cameras",
        abstract: "Declare cameras (the cameras.v1 table) and list what the cluster holds.",
        discussion: """
            A cameras file declares each camera's source, sampling, working resolution, static privacy masks, redaction policy, snapshot rate and labels (see `vigil cameras apply --help`). Credentials never go into the file or Kafka: name the secret that holds them under `credentials:`.
            """,
        subcommands: [Apply.self, List.self]
    )

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a cameras file, show what changes, and publish it to cameras.v1.",
            discussion: """
                The file is checked whole first: every problem is listed with its file, line, camera and key, and nothing is published while any remains. Then the cluster's cameras are read, the changes are printed camera by camera, and the file's cameras are published: changed and new ones as new versions in force from one second after apply (time for every replica to hold them), unchanged ones republished as they are (the dev cluster keeps no old records, so a writer republishes its whole set; readers ignore a version they hold). Every change is an audit event on audit.events.v1, written before the change itself.

                A change that reduces privacy (removing or shrinking a privacy mask, switching redaction from whole persons to faces) needs a second admin; until that approval exists (the "Audit" work), apply refuses it and publishes nothing.

                Cameras in the cluster but not in the file are kept unless --delete-missing is given.

                Exit status: 0 published (or, with --dry-run, checked); 1 the file has problems, a change was refused, or the cluster could not be read or written.
                """
        )

        @Argument(help: "The cameras file (YAML).")
        var file: String

        @OptionGroup var connection: ConnectionOptions

        @OptionGroup var apply: DeclaredApplyOptions

        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.cameras")
            let desired: [Vigil_V1_CameraConfig]
            do {
                desired = try CamerasFile.load(path: file)
            } catch {
                for problem in error.errors { writeError(problem.description) }
                writeError("vigil: \(TopologyOption.count(error.errors.count, "problem")) in \(file); nothing was published")
                throw ExitCode.failure
            }
            let cluster = connection.configuration(clientID: "vigil-cameras")
            let writer = CamerasCommand.writer(actor: apply.actor)
            let current = try await CameraTable.make().readCurrentValues(cluster: cluster, logger: logger)
            let plan = CameraPlan(current: current, desired: desired, deleteMissing: apply.deleteMissing, actor: apply.actor, now: apply.effectiveMilliseconds)
            writer.printPlan(plan)
            let refused = plan.privacyReducing
            guard refused.isEmpty else {
                for entry in refused {
                    for reason in entry.privacyReductions { writeError("vigil: camera \(entry.id): refused: this change \(reason)") }
                }
                writeError("vigil: a change that reduces privacy needs a second admin's approval, which vigil cannot record yet; nothing was published. Keep the mask or redaction as it is in \(file), or wait for the two-person rule")
                throw ExitCode.failure
            }
            if apply.dryRun {
                writeLine("dry run: nothing published")
                return
            }
            try await writer.publish(plan, cluster: cluster, logger: logger)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the cameras the cluster holds (the current version of each).")

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.cameras")
            let cameras = try await CameraTable.make().readCurrentValues(cluster: connection.configuration(clientID: "vigil-cameras"), logger: logger)
            guard !cameras.isEmpty else {
                writeLine("no cameras; declare them with `vigil cameras apply cameras.yaml`")
                return
            }
            let rows = cameras.keys.sorted().map { id -> [String] in
                let stored = cameras[id]!
                let config = stored.config
                let effective = Date(timeIntervalSince1970: Double(stored.effectiveMilliseconds) / 1_000)
                return [
                    id, "v\(config.version)", config.sourceURL, CameraPlan.describe(config.sampling), CameraPlan.describe(config),
                    CameraPlan.describe(config.redactionPolicy), String(config.privacyMasks.count), config.snapshotsPerMinute.formatted(),
                    config.updatedBy, effective.formatted(.iso8601),
                ]
            }
            printTable(header: ["CAMERA", "VERSION", "SOURCE", "SAMPLING", "RESOLUTION", "REDACTION", "MASKS", "SNAPSHOTS/MIN", "BY", "IN FORCE SINCE"], rows: rows)
        }
    }

    static func writer(actor: String) -> DeclaredTableWriter<Vigil_V1_CameraConfig> {
        DeclaredTableWriter(
            topic: CameraTable.topic, kind: .camera, command: "vigil cameras apply", serialize: { try $0.serializedBytes() },
            auditKind: .cameraConfigChanged, actor: actor, describe: { event, entry in event.cameraID = entry.id }
        )
    }
}
