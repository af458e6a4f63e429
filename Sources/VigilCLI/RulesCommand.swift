import ArgumentParser
import DeclarationFiles
import Detect
import Foundation
import Rules
import Vision

struct RulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Check rules files (rules/*.yaml).",
        discussion: """
            A rules file declares what vigil-match watches for: zone intrusion, line crossing, dwell in a hazardous zone, crowd density (with its safety purpose), camera tamper and camera offline. See rules/examples.yaml and the README for each kind's keys. Publishing rules to rules.v1 (`vigil rules apply`) comes with the rule engine.
            """,
        subcommands: [Validate.self]
    )

    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check rules files and list every problem with its file, line, rule and key.",
            discussion: """
                Rules may name the classes detect publishes: person, and the classes of the operator models in detect's slot file (--slot-file, the same file as DETECT_SLOT_FILE). Rule ids must be unique across the files.

                Exit status: 0 every file is valid; 1 a file has problems or cannot be read.
                """
        )

        @Argument(help: "Rules files (YAML).")
        var files: [String]

        @Option(help: "detect's slot file, whose models' classes rules may name.")
        var slotFile: String?

        func run() async throws {
            var classes = RulesFile.builtInClasses
            if let slotFile {
                do {
                    for model in try SlotFile.load(slotFile) { classes.formUnion(model.labels) }
                } catch {
                    writeError("vigil: \(error)")
                    throw ExitCode.failure
                }
            }
            do {
                let rules = try RulesFile.load(paths: files, knownClasses: classes)
                writeLine("valid — \(TopologyOption.count(rules.count, "rule")) in \(TopologyOption.count(files.count, "file"))")
            } catch {
                for problem in error.errors { writeLine(problem.description) }
                writeLine("\(TopologyOption.count(error.errors.count, "problem")) in \(files.joined(separator: ", "))")
                throw ExitCode.failure
            }
        }
    }
}
