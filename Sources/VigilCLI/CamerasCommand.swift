import ArgumentParser
import Cameras
import CommandLineSupport
import Crypto
import DeclarationFiles
import Foundation
import Kafka
import Logging
import SigningKeys
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

struct CamerasCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cameras",
        abstract: "Declare cameras (the cameras.v1 table), approve privacy-reducing changes, and list what the cluster holds.",
        discussion: """
            A cameras file declares each camera's source, sampling, working resolution, static privacy masks, redaction policy, snapshot rate and labels (see `vigil cameras apply --help`). Credentials never go into the file or Kafka: name the secret that holds them under `credentials:`.

            Every camera record is signed by an admin (Ed25519), and every worker that reads cameras.v1 checks the signatures against the trusted admin keys file (CAMERA_ADMIN_KEYS_FILE, one `<account> <public key>` line per admin). A change that masks less — a privacy mask removed or shrunk, whole-person redaction switched to faces, a masked class dropped — needs two distinct admins: `vigil cameras propose`, then `vigil cameras approve` by another admin, then `vigil cameras apply --proposal`. The workers refuse a record that lacks them, even one written straight to Kafka.
            """,
        subcommands: [Apply.self, Propose.self, Approve.self, Keygen.self, List.self]
    )

    /// The trusted admins and the admin's own key.
    struct AdminOptions: ParsableArguments {
        @Option(help: "The trusted admin keys file, one `<account> <base64 public key>` per line (default: $CAMERA_ADMIN_KEYS_FILE).")
        var adminKeys: String?

        @Option(help: "Your private admin key, as `vigil cameras keygen` wrote it (default: $VIGIL_ADMIN_KEY_FILE).")
        var key: String?

        func admins() throws -> CameraAdmins {
            do {
                if let adminKeys { return try CameraAdmins.load(file: adminKeys) }
                return try CameraAdmins.fromEnvironment()
            } catch {
                throw ValidationError("admin keys: \(error)")
            }
        }

        /// The signer acting as `account`: their key must be trusted for that account.
        func signer(account: String, admins: CameraAdmins) throws -> CameraSigner {
            guard let file = key ?? ProcessInfo.processInfo.environment["VIGIL_ADMIN_KEY_FILE"], !file.isEmpty else {
                throw ValidationError("camera changes are signed: give your admin key with --key FILE or $VIGIL_ADMIN_KEY_FILE (`vigil cameras keygen` makes one)")
            }
            do {
                return try CameraSigner.load(keyFile: file, account: account, admins: admins)
            } catch {
                throw ValidationError("\(error)")
            }
        }
    }

    /// The cluster's cameras as the workers see them (refused records left out), with each
    /// camera's last configuration, deleted ones included.
    static func read(cluster: KafkaConfiguration, admins: CameraAdmins, logger: Logger) async throws -> (table: Table<Vigil_V1_CameraConfig>, current: [String: StoredCamera], last: [String: Vigil_V1_CameraConfig]) {
        let table = CameraTable.make(admins: admins)
        let current = try await table.readCurrentValues(cluster: cluster, logger: logger)
        let last = Dictionary(uniqueKeysWithValues: table.keysWithHistory.compactMap { id in table.lastValue(id).map { (id, $0) } })
        return (table, current, last)
    }

    /// A proposal file and what its signed records do against the cluster's cameras
    /// (`CameraProposal.checked`); a proposal that no longer applies, or whose text says
    /// otherwise, is refused here, saying why, and nothing is signed or published.
    static func checkedProposal(
        _ file: String, admins: CameraAdmins, cluster: KafkaConfiguration, logger: Logger
    ) async throws -> (CameraProposal, Table<Vigil_V1_CameraConfig>, [CameraProposal.CheckedChange]) {
        let proposal: CameraProposal
        do { proposal = try CameraProposal.load(file) } catch { throw ValidationError("\(error)") }
        let (table, _, _) = try await read(cluster: cluster, admins: admins, logger: logger)
        do {
            return (proposal, table, try proposal.checked(against: table))
        } catch {
            writeError("vigil: refused: \(error)")
            writeError("vigil: nothing was signed or published")
            throw ExitCode.failure
        }
    }

    /// The file's cameras against the cluster's: the plan, each new version stamped with what it replaces.
    static func plan(file: String, apply: DeclaredApplyOptions, cluster: KafkaConfiguration, admins: CameraAdmins, logger: Logger) async throws -> CameraPlan {
        let desired: [Vigil_V1_CameraConfig]
        do {
            desired = try CamerasFile.load(path: file)
        } catch {
            for problem in error.errors { writeError(problem.description) }
            writeError("vigil: \(TopologyOption.count(error.errors.count, "problem")) in \(file); nothing was published")
            throw ExitCode.failure
        }
        let (_, current, last) = try await read(cluster: cluster, admins: admins, logger: logger)
        var plan = CameraPlan(current: current, desired: desired, deleteMissing: apply.deleteMissing, actor: apply.actor, now: apply.effectiveMilliseconds)
        plan.stampReplaced(last: last)
        return plan
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a cameras file (or an approved proposal), show what changes, sign it and publish it to cameras.v1.",
            discussion: """
                The file is checked whole first: every problem is listed with its file, line, camera and key, and nothing is published while any remains. Then the cluster's cameras are read, the changes are printed camera by camera, and the file's cameras are published, signed with your admin key: changed and new ones as new versions in force from one second after apply (time for every replica to hold them), unchanged ones republished as they are (the dev cluster keeps no old records, so a writer republishes its whole set; readers ignore a version they hold). Every change is an audit event on audit.events.v1, written before the change itself.

                A change that reduces privacy (removing or shrinking a privacy mask, switching redaction from whole persons to faces, dropping a masked class) needs a second admin: apply refuses it and publishes nothing. Propose it (`vigil cameras propose FILE --out change.json`), have another admin approve it (`vigil cameras approve change.json`), then publish it with `vigil cameras apply --proposal change.json`.

                Cameras in the cluster but not in the file are kept unless --delete-missing is given.

                Exit status: 0 published (or, with --dry-run, checked); 1 the file has problems, a change was refused, or the cluster could not be read or written.
                """
        )

        @Argument(help: "The cameras file (YAML).")
        var file: String?

        @Option(help: "Publish this approved proposal instead of a file.")
        var proposal: String?

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var apply: DeclaredApplyOptions
        @OptionGroup var admin: AdminOptions
        @OptionGroup var logging: LoggingOptions

        func validate() throws {
            guard (file == nil) != (proposal == nil) else { throw ValidationError("give a cameras file or --proposal FILE, not both") }
        }

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.cameras")
            let admins = try admin.admins()
            let cluster = connection.configuration(clientID: "vigil-cameras")
            if let proposal {
                try await publish(proposal: proposal, admins: admins, cluster: cluster, logger: logger)
                return
            }
            var plan = try await CamerasCommand.plan(file: file!, apply: apply, cluster: cluster, admins: admins, logger: logger)
            let writer = CamerasCommand.writer(actor: apply.actor)
            writer.printPlan(plan)
            let refused = plan.privacyReducing
            guard refused.isEmpty else {
                for entry in refused {
                    for reason in entry.privacyReductions { writeError("vigil: camera \(entry.id): refused: this change \(reason)") }
                }
                writeError(
                    "vigil: a change that reduces privacy needs a second admin; nothing was published. Propose it with `vigil cameras propose \(file!) --out change.json`, have another admin run `vigil cameras approve change.json`, then `vigil cameras apply --proposal change.json`"
                )
                throw ExitCode.failure
            }
            if apply.dryRun {
                writeLine("dry run: nothing published")
                return
            }
            try plan.sign(with: admin.signer(account: apply.actor, admins: admins))
            try await writer.publish(plan, cluster: cluster, logger: logger)
        }

        /// Publishes an approved proposal, after checking each change exactly as the workers
        /// will: its signatures, the configuration it replaces (still the current one: a
        /// proposal already published is refused), and two admins where it masks less.
        func publish(proposal file: String, admins: CameraAdmins, cluster: KafkaConfiguration, logger: Logger) async throws {
            let (_, table, changes) = try await CamerasCommand.checkedProposal(file, admins: admins, cluster: cluster, logger: logger)
            var entries: [CameraPlan.Entry] = []
            var problems: [String] = []
            for change in changes {
                let config = change.config
                if let reason = CameraAdmission.refusal(of: config, last: table.lastValue(change.camera), admins: admins) {
                    problems.append("camera \(change.camera) version \(config.version) \(reason)")
                    continue
                }
                let kind: CameraPlan.Kind = config.deleted ? .removed : change.current == nil ? .added : .changed
                entries.append(CameraPlan.Entry(
                    id: change.camera, kind: kind, differences: change.differences, publish: config,
                    effectiveMilliseconds: config.effectiveTime.milliseconds, privacyReductions: change.reductions
                ))
            }
            guard problems.isEmpty else {
                for problem in problems { writeError("vigil: refused: \(problem)") }
                writeError("vigil: nothing was published; the workers would refuse these records too")
                throw ExitCode.failure
            }
            let plan = CameraPlan(entries: entries)
            let writer = CamerasCommand.writer(actor: apply.actor)
            writer.printPlan(plan)
            try await writer.publish(plan, dryRun: apply.dryRun, cluster: cluster, logger: logger)
        }
    }

    struct Propose: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign a cameras file's changes as a proposal for a second admin to approve.",
            discussion: """
                Reads the cluster's cameras, prints the changes (and which of them mask less), signs every changed camera with your key, and writes the proposal (JSON, readable by both admins). Each change that reduces privacy is an audit event (PRIVACY_CHANGE_REQUESTED). Nothing is published: another admin runs `vigil cameras approve FILE`, then anyone runs `vigil cameras apply --proposal FILE`. If the cluster's cameras change meanwhile, the proposal is refused: propose again.
                """
        )

        @Argument(help: "The cameras file (YAML).")
        var file: String

        @Option(help: "Where to write the proposal.")
        var out: String

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var apply: DeclaredApplyOptions
        @OptionGroup var admin: AdminOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.cameras")
            let admins = try admin.admins()
            let signer = try admin.signer(account: apply.actor, admins: admins)
            let cluster = connection.configuration(clientID: "vigil-cameras")
            var plan = try await CamerasCommand.plan(file: file, apply: apply, cluster: cluster, admins: admins, logger: logger)
            CamerasCommand.writer(actor: apply.actor).printPlan(plan)
            guard plan.entries.contains(where: { [.added, .changed].contains($0.kind) }) else {
                writeError("vigil: nothing to propose: no camera in \(file) differs from the cluster")
                throw ExitCode.failure
            }
            try plan.sign(with: signer)
            let proposal = try CameraProposal(plan: plan, proposer: apply.actor, created: Date())
            let events = proposal.changes.filter { !$0.reductions.isEmpty }.map { change in
                AuditEvents.event(
                    id: "privacy-request:\(change.camera):v\(change.version):\(apply.actor)", kind: .privacyChangeRequested, actor: apply.actor,
                    subject: "camera:\(change.camera)", cameraID: change.camera,
                    detail: "proposed version \(change.version): it \(change.reductions.joined(separator: "; it ")); " + change.differences.joined(separator: "; "),
                    origin: "vigil cameras propose"
                )
            }
            try await AuditEvents.send(events, cluster: cluster, logger: logger, consequence: "no proposal was written")
            do { try proposal.write(to: out) } catch { throw ValidationError("cannot write the proposal to \(out): \(error)") }
            let reducing = events.count
            writeLine("wrote \(out): \(TopologyOption.count(proposal.changes.count, "camera change")) signed by \(apply.actor)\(reducing > 0 ? ", \(reducing) of them reducing privacy" : "")")
            writeLine("next: another admin runs `vigil cameras approve \(out)`, then `vigil cameras apply --proposal \(out)`")
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Approve another admin's camera proposal: check it, show it, and add your signature.",
            discussion: """
                Reads the cluster's cameras, checks every signature in the proposal against the trusted admin keys, and prints each change as its signed record makes it against the cameras the cluster holds — recomputed, never the proposal's own text, which no signature covers. A proposal whose text says otherwise, or that no longer applies (already published, or the camera changed since), is refused. Then your signature is added to every change and the proposal written back. Approving a change you proposed or already approved is refused and audited (PRIVACY_CHANGE_REJECTED): the two-person rule needs two distinct admins. An approval is an audit event (PRIVACY_CHANGE_APPROVED) naming the recomputed reductions.
                """
        )

        @Argument(help: "The proposal file (`vigil cameras propose` wrote it).")
        var proposal: String

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var apply: DeclaredApplyOptions
        @OptionGroup var admin: AdminOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.cameras")
            let admins = try admin.admins()
            let signer = try admin.signer(account: apply.actor, admins: admins)
            let cluster = connection.configuration(clientID: "vigil-cameras")
            let (loaded, _, changes) = try await CamerasCommand.checkedProposal(self.proposal, admins: admins, cluster: cluster, logger: logger)
            var proposal = loaded
            for change in changes {
                writeLine("\(change.camera): version \(change.config.version) proposed by \(proposal.proposer)")
                for line in change.differences { writeLine("  \(line)") }
                for line in change.reductions { writeLine("  reduces privacy: it \(line)") }
            }
            do {
                try proposal.approve(by: signer, admins: admins)
            } catch let selfApproval as SelfApproval {
                let event = AuditEvents.event(
                    id: "privacy-self-approval:\(selfApproval.camera):\(apply.actor):\(UUID().uuidString.lowercased())", kind: .privacyChangeRejected,
                    actor: apply.actor, subject: "camera:\(selfApproval.camera)", cameraID: selfApproval.camera,
                    detail: "refused a self-approval: \(selfApproval)", origin: "vigil cameras approve"
                )
                try await AuditEvents.send([event], cluster: cluster, logger: logger, consequence: "the self-approval was refused all the same")
                writeError("vigil: refused: \(selfApproval)")
                throw ExitCode.failure
            } catch {
                writeError("vigil: refused: \(error)")
                throw ExitCode.failure
            }
            let events = changes.map { change in
                AuditEvents.event(
                    id: "privacy-approval:\(change.camera):v\(change.config.version):\(apply.actor)", kind: .privacyChangeApproved, actor: apply.actor,
                    subject: "camera:\(change.camera)", cameraID: change.camera,
                    detail: "approved version \(change.config.version) proposed by \(proposal.proposer): " + (change.reductions.map { "it \($0)" } + change.differences).joined(separator: "; "),
                    origin: "vigil cameras approve", approvers: [apply.actor]
                )
            }
            try await AuditEvents.send(events, cluster: cluster, logger: logger, consequence: "the proposal was not signed")
            do { try proposal.write(to: self.proposal) } catch { throw ValidationError("cannot write the proposal back to \(self.proposal): \(error)") }
            writeLine("approved \(TopologyOption.count(proposal.changes.count, "camera change")) as \(apply.actor); publish with `vigil cameras apply --proposal \(self.proposal)`")
        }
    }

    struct Keygen: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make an admin's signing key, and print the line that makes the workers trust it.",
            discussion: """
                Writes a new Ed25519 private key to --out (mode 0600; never overwritten; keep it with the admin, never in the cluster) and prints `<account> <public key>`: add that line to the admin keys file every worker reads (CAMERA_ADMIN_KEYS_FILE), then restart the workers.
                """
        )

        @Option(help: "The admin's operator account.")
        var account: String

        @Option(help: "Where to write the private key.")
        var out: String

        func run() throws {
            guard !account.isEmpty, !account.contains(where: \.isWhitespace) else { throw ValidationError("--account must be one word: the operator account") }
            guard !FileManager.default.fileExists(atPath: out) else { throw ValidationError("\(out) exists; keys are never overwritten") }
            guard let key = SigningKeys.writeNewKey(to: out) else { throw ValidationError("cannot write \(out)") }
            writeLine("\(account) \(SigningKeys.text(key.publicKey))")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the cameras the cluster holds (the current version of each, refused records left out, as the workers see them).")

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var admin: AdminOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.cameras")
            let (_, cameras, _) = try await CamerasCommand.read(cluster: connection.configuration(clientID: "vigil-cameras"), admins: admin.admins(), logger: logger)
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
                    config.updatedBy, Set(config.signatures.map(\.admin)).sorted().joined(separator: ","), effective.formatted(.iso8601),
                ]
            }
            printTable(header: ["CAMERA", "VERSION", "SOURCE", "SAMPLING", "RESOLUTION", "REDACTION", "MASKS", "SNAPSHOTS/MIN", "BY", "SIGNED BY", "IN FORCE SINCE"], rows: rows)
        }
    }

    static func writer(actor: String) -> DeclaredTableWriter<Vigil_V1_CameraConfig> {
        DeclaredTableWriter(
            topic: CameraTable.topic, kind: .camera, command: "vigil cameras apply", serialize: { try $0.serializedBytes() },
            auditKind: .cameraConfigChanged, actor: actor,
            describe: { event, entry in
                event.cameraID = entry.id
                // The other admins who signed the version (a privacy-reducing change's approvers).
                event.approvers = Array(Set(entry.publish?.signatures.map(\.admin) ?? []).subtracting([actor])).sorted()
            }
        )
    }
}
