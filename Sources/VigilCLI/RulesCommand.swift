import ArgumentParser
import Cameras
import CommandLineSupport
import DeclarationFiles
import Foundation
import Rules
import SlotDeclarations
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

struct RulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Declare rules (the rules.v1 table), check rules files, and list what the cluster holds.",
        discussion: """
            A rules file declares what vigil-match watches for: zone intrusion, line crossing, dwell in a hazardous zone, crowd density (with its safety purpose), camera tamper and camera offline. See rules/examples.yaml and docs/rules.md for each kind's keys.
            """,
        subcommands: [Validate.self, Apply.self, List.self, Report.self]
    )

    /// The classes rules may name: person, and those of the slot file's models.
    static func knownClasses(slotFile: String?) throws -> Set<String> {
        var classes = RulesFile.builtInClasses
        guard let slotFile else { return classes }
        do {
            for model in try SlotFile.load(slotFile) { classes.formUnion(model.labels) }
        } catch {
            writeError("vigil: \(error)")
            throw ExitCode.failure
        }
        return classes
    }

    /// The rules of `files`, or every problem printed and exit status 1.
    static func load(_ files: [String], slotFile: String?) throws -> [Vigil_V1_Rule] {
        let classes = try knownClasses(slotFile: slotFile)
        do {
            return try RulesFile.load(paths: files, knownClasses: classes)
        } catch {
            for problem in error.errors { writeLine(problem.description) }
            writeLine("\(TopologyOption.count(error.errors.count, "problem")) in \(files.joined(separator: ", "))")
            throw ExitCode.failure
        }
    }

    /// The files a path names: a rules file, or every `.yaml`/`.yml` file of a folder.
    static func files(_ paths: [String]) -> [String] {
        paths.flatMap { path -> [String] in
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue else { return [path] }
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            return names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { (path as NSString).appendingPathComponent($0) }
        }
    }

    static func writer(actor: String) -> DeclaredTableWriter<Vigil_V1_Rule> {
        DeclaredTableWriter(
            topic: RuleTable.topic, kind: .rule, command: "vigil rules apply", serialize: { try $0.serializedBytes() }, auditKind: .ruleChanged, actor: actor
        )
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check rules files, show what changes, and publish the rules to rules.v1.",
            discussion: """
                The files (or every .yaml file of a folder) are checked whole first: every problem is listed with its file, line, rule and key, and nothing is published while any remains. Then the cluster's rules are read, the changes are printed rule by rule, and the rules are published: changed and new ones as new versions in force from one second after apply (vigil-match judges every frame captured from then by them; the second lets every replica receive them first), unchanged ones republished as they are. Every change is an audit event on audit.events.v1 with its author and full diff, written before the change itself.

                Rules in the cluster but not in the files are kept unless --delete-missing is given. A rule naming a camera that cameras.v1 does not hold is published with a warning: it applies once the camera is declared.

                Exit status: 0 published (or, with --dry-run, checked); 1 a file has problems, or the cluster could not be read or written.
                """
        )

        @Argument(help: "Rules files (YAML), or folders of them.")
        var paths: [String]

        @Option(help: "detect's slot file, whose models' classes rules may name.")
        var slotFile: String?

        @OptionGroup var connection: ConnectionOptions

        @OptionGroup var apply: DeclaredApplyOptions

        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.rules")
            let desired = try RulesCommand.load(RulesCommand.files(paths), slotFile: slotFile)
            let cluster = connection.configuration(clientID: "vigil-rules")
            let writer = RulesCommand.writer(actor: apply.actor)
            let current = try await RuleTable.make().readCurrentValues(cluster: cluster, logger: logger)
            // The cameras as the workers see them need the trusted admin keys; without them the
            // rules' cameras go unchecked, and the operator is told so.
            if let admins = try? CameraAdmins.fromEnvironment() {
                let cameras = try await CameraTable.make(admins: admins).readCurrentValues(cluster: cluster, logger: logger)
                for rule in desired {
                    for camera in rule.cameraIds where cameras[camera] == nil {
                        writeError("vigil: warning: rule \(rule.ruleID) names camera \(camera), which \(CameraTable.topic) does not hold; it applies once the camera is declared")
                    }
                }
            } else {
                writeError("vigil: note: \(CameraAdmins.environmentKey) is not set, so the rules' cameras were not checked against \(CameraTable.topic)")
            }
            let plan = RulePlan(.rule, current: current, desired: desired, deleteMissing: apply.deleteMissing, actor: apply.actor, now: apply.effectiveMilliseconds)
            writer.printPlan(plan)
            try await writer.publish(plan, dryRun: apply.dryRun, cluster: cluster, logger: logger)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the rules the cluster holds (the current version of each).")

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.rules")
            let rules = try await RuleTable.make().readCurrentValues(cluster: connection.configuration(clientID: "vigil-rules"), logger: logger)
            guard !rules.isEmpty else {
                writeLine("no rules; declare them with `vigil rules apply rules/`")
                return
            }
            let rows = rules.keys.sorted().map { id -> [String] in
                let stored = rules[id]!
                let rule = stored.value
                let effective = Date(timeIntervalSince1970: Double(stored.effectiveMilliseconds) / 1_000)
                let cameras = rule.cameraIds + rule.cameraSelector.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                return [
                    id, "v\(rule.version)", RuleChanges.describe(rule.kind), cameras.joined(separator: ","), RuleChanges.describe(rule.severity),
                    rule.enabled ? "yes" : "no", rule.author, effective.formatted(.iso8601),
                ]
            }
            printTable(header: ["RULE", "VERSION", "KIND", "CAMERAS", "SEVERITY", "ENABLED", "BY", "IN FORCE SINCE"], rows: rows)
        }
    }

    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check rules files and list every problem with its file, line, rule and key.",
            discussion: """
                Rules may name the classes detect publishes: person, and the classes of the operator models in detect's slot file (--slot-file, the same file as DETECT_SLOT_FILE). Rule ids must be unique across the files.

                Exit status: 0 every file is valid; 1 a file has problems or cannot be read.
                """
        )

        @Argument(help: "Rules files (YAML), or folders of them.")
        var files: [String]

        @Option(help: "detect's slot file, whose models' classes rules may name.")
        var slotFile: String?

        func run() async throws {
            let files = RulesCommand.files(files)
            let rules = try RulesCommand.load(files, slotFile: slotFile)
            writeLine("valid — \(TopologyOption.count(rules.count, "rule")) in \(TopologyOption.count(files.count, "file"))")
        }
    }
}
