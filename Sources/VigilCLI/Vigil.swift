import ArgumentParser
import CommandLineSupport
import Foundation
import Logging
import WorkerRuntime

@main
struct Vigil: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vigil",
        abstract: "Operate a vigil cluster: the local dev cluster, topics, cameras, status and benchmarks.",
        discussion: """
            vigil turns camera video into safety incidents and alerts. It never identifies people. Start locally with `vigil dev-cluster`; see README.md for the whole pipeline.
            """,
        version: "vigil \(VigilRelease.version) (schema \(VigilRelease.schema))",
        subcommands: [UpCommand.self, DevClusterCommand.self, TopicsCommand.self, CamerasCommand.self, RulesCommand.self, IncidentsCommand.self, AlertsCommand.self, WebhooksCommand.self, SnapshotsCommand.self, AuditCommand.self, StatusCommand.self, BenchCommand.self]
    )
}
