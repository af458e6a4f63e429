import ArgumentParser
import Audit
import CommandLineSupport
import Crypto
import Foundation
import Kafka
import Logging
import SigningKeys
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

/// `vigil audit`: verify, read and export the hash-chained audit log, and make the key that
/// signs its heads.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Verify, show and export the hash-chained audit log (audit.log.v1).",
        subcommands: [Verify.self, Show.self, Export.self, RequestHead.self, Keygen.self]
    )

    /// Where the log is read from: the cluster, or a folder `vigil audit export` wrote.
    struct Source: ParsableArguments {
        @Option(help: "Bootstrap servers of the cluster to read audit.log.v1 and audit.heads.v1 from.")
        var bootstrap: String?

        @Option(help: "A folder written by `vigil audit export`, instead of the cluster: verification needs no cluster.")
        var from: String?

        @Option(name: .customLong("property"), help: "A librdkafka property as KEY=VALUE (TLS, SASL). Repeatable.")
        var properties: [String] = []

        func validate() throws {
            guard (bootstrap == nil) != (from == nil) else { throw ValidationError("give --bootstrap (read the cluster) or --from DIR (an export), one of them") }
        }

        /// The log's records per partition, in offset order (read from the cluster: every partition
        /// of the topic, an empty one too), and the heads published with it.
        func read(logger: Logger) async throws -> (log: [Int32: [(offset: Int64, value: [UInt8])]], heads: [Vigil_V1_AuditChainHead]) {
            if let from { return try AuditExport.read(from: from) }
            let pairs = (try? KafkaConfiguration.properties(fromAssignments: properties)) ?? [:]
            let cluster = KafkaConfiguration(bootstrapServers: bootstrap ?? "", clientID: "vigil-audit-cli", properties: pairs)
            do {
                // A chain emptied whole is still a chain: verify reports it, not skips it.
                let metadata = try await KafkaAdmin(configuration: cluster, logger: logger).metadata(topics: [AuditSequencer.logTopic])
                let partitions = metadata.topics.first { $0.name == AuditSequencer.logTopic }?.partitions.map(\.id) ?? []
                var log = Dictionary(uniqueKeysWithValues: partitions.map { ($0, [(offset: Int64, value: [UInt8])]()) })
                for record in try await KafkaTableReader.readPartitions(cluster: cluster, topic: AuditSequencer.logTopic, partitions: nil, logger: logger) {
                    log[record.partition, default: []].append((record.offset, record.value))
                }
                let heads = try await KafkaTableReader.readPartitions(cluster: cluster, topic: AuditSequencer.headsTopic, partitions: nil, logger: logger)
                    .compactMap { try? Vigil_V1_AuditChainHead(serializedBytes: $0.value) }
                return (log, heads)
            } catch {
                writeError("vigil: cannot read the audit log from \(cluster.bootstrapServers): \(error)")
                throw ExitCode.failure
            }
        }

        var cluster: KafkaConfiguration {
            let pairs = (try? KafkaConfiguration.properties(fromAssignments: properties)) ?? [:]
            return KafkaConfiguration(bootstrapServers: bootstrap ?? "", clientID: "vigil-audit-cli", properties: pairs)
        }

        /// The heads published with the log (audit.heads.v1, or the export's heads).
        func publishedHeads(logger: Logger) async throws -> [Vigil_V1_AuditChainHead] {
            if let from { return try AuditExport.read(from: from).heads }
            do {
                return try await KafkaTableReader.readPartitions(cluster: cluster, topic: AuditSequencer.headsTopic, partitions: nil, logger: logger)
                    .compactMap { try? Vigil_V1_AuditChainHead(serializedBytes: $0.value) }
            } catch {
                writeError("vigil: cannot read \(AuditSequencer.headsTopic) from \(cluster.bootstrapServers): \(error)")
                throw ExitCode.failure
            }
        }

        /// Every chain verified against `heads` as its records stream in: the log is never held
        /// whole (it is kept for ever), only each chain's running check.
        func verifyStreaming(heads: [Vigil_V1_AuditChainHead], logger: Logger) async throws -> [ChainReport] {
            if let from { return AuditChain.verify(log: try AuditExport.read(from: from).log, heads: heads) }
            let cluster = cluster
            do {
                // A chain emptied whole is still a chain: verify reports it, not skips it.
                let metadata = try await KafkaAdmin(configuration: cluster, logger: logger).metadata(topics: [AuditSequencer.logTopic])
                let partitions = metadata.topics.first { $0.name == AuditSequencer.logTopic }?.partitions.map(\.id) ?? []
                let chains = StreamedChains(partitions: Set(partitions).union(heads.map(\.partition)), heads: heads)
                try await KafkaTableReader.forEachRecord(cluster: cluster, topic: AuditSequencer.logTopic, partitions: nil, logger: logger) { record in
                    chains.add(partition: record.partition, offset: record.offset, value: record.value)
                }
                return chains.reports()
            } catch {
                writeError("vigil: cannot read the audit log from \(cluster.bootstrapServers): \(error)")
                throw ExitCode.failure
            }
        }
    }

    /// The chains of a log being read: one `ChainVerifier` per partition, fed from the reader's thread.
    final class StreamedChains: @unchecked Sendable {
        private let lock = NSLock()
        private var verifiers: [Int32: ChainVerifier]
        private let heads: [Vigil_V1_AuditChainHead]

        init(partitions: Set<Int32>, heads: [Vigil_V1_AuditChainHead]) {
            self.heads = heads
            verifiers = Dictionary(uniqueKeysWithValues: partitions.map { ($0, ChainVerifier(partition: $0, heads: heads)) })
        }

        func add(partition: Int32, offset: Int64, value: [UInt8]) {
            lock.withLock {
                verifiers[partition, default: ChainVerifier(partition: partition, heads: heads)].add(offset: offset, value: value)
            }
        }

        func reports() -> [ChainReport] {
            lock.withLock { verifiers.keys.sorted().compactMap { verifiers[$0]?.report() } }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every chain of the audit log; exit 1 on any modified, missing, reordered, forked or truncated record.",
            discussion: """
                Recomputes every record's hash and every link. With --head FILE (heads an auditor kept: a file `vigil audit export` wrote, heads.jsonl) and the heads the cluster published, each chain must reach each head, with the same hash: a chain cut off, rewritten or deleted whole before a head is reported (every partition a head names is checked, an empty one too). Heads are trusted only when signed by a --public-key.

                The dev cluster keeps only the newest 5 MiB of each partition, and production retention may drop old records: a chain whose first retained record is not sequence 0 is verified from there on, and the report says so — that is not tampering.

                Exit status: 0 every chain verifies; 1 a problem was found, or the log could not be read.
                """
        )

        @OptionGroup var source: Source

        @Option(name: .customLong("head"), help: "A file of signed heads kept outside the cluster (JSON lines, as `vigil audit export` writes heads.jsonl). Repeatable.")
        var headFiles: [String] = []

        @Option(name: .customLong("public-key"), help: "A public key that signs heads, base64 or a file holding it (`vigil audit keygen` prints it). Repeatable.")
        var publicKeys: [String] = []

        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.audit")
            let keys: [Curve25519.Signing.PublicKey]
            do {
                keys = try publicKeys.map(SigningKeys.publicKey)
            } catch {
                writeError("vigil: --public-key: \(error)")
                throw ExitCode.failure
            }
            var heads = try await source.publishedHeads(logger: logger)
            for file in headFiles {
                do {
                    heads += try AuditExport.heads(file: file)
                } catch {
                    writeError("vigil: --head \(file): \(error)")
                    throw ExitCode.failure
                }
            }
            var failed = false
            if !heads.isEmpty, keys.isEmpty {
                writeError("vigil: \(TopologyOption.count(heads.count, "signed head")) to check but no --public-key to trust them with; give the key that signs them")
                throw ExitCode.failure
            }
            var trusted: [Vigil_V1_AuditChainHead] = []
            for head in heads {
                if let problem = ChainHeads.problem(with: head, keys: keys) {
                    writeLine("head: \(problem)")
                    failed = true
                } else {
                    trusted.append(head)
                }
            }
            let reports = try await source.verifyStreaming(heads: trusted, logger: logger)
            for report in reports {
                var line = "partition \(report.partition): \(TopologyOption.count(report.records, "record"))"
                if let first = report.firstSequence, let last = report.headSequence { line += ", sequences \(first)–\(last)" }
                if let hash = report.headHash { line += ", head \(hash.prefix(6).map { String(format: "%02x", $0) }.joined())…" }
                if report.headsChecked > 0 { line += ", \(TopologyOption.count(report.headsChecked, "signed head")) checked" }
                writeLine(line + (report.problems.isEmpty ? ": ok" : ": \(TopologyOption.count(report.problems.count, "problem"))"))
                if let first = report.firstSequence, first > 0, let offset = report.firstOffset {
                    writeLine("  history before offset \(offset) (sequences 0–\(first - 1)) is not retained by this cluster: verified from sequence \(first)")
                }
                for problem in report.problems { writeLine("  \(problem.kind.rawValue): \(problem.description)") }
                failed = failed || !report.problems.isEmpty
            }
            if reports.allSatisfy({ $0.records == 0 && $0.headsChecked == 0 }) { writeLine("the audit log is empty") }
            if failed { throw ExitCode.failure }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the audit log's events: time, kind, actor, subject, what changed.")

        @OptionGroup var source: Source

        @Option(help: "Only events at or after this time (ISO 8601).")
        var since: String?

        @Option(help: "Only events of this kind, e.g. rule_changed, snapshot_exported, camera_config_changed.")
        var kind: String?

        @OptionGroup var logging: LoggingOptions

        func validate() throws {
            if let since, (try? Date(since, strategy: .iso8601)) == nil {
                throw ValidationError("--since must be an ISO 8601 time such as 2026-11-30T08:00:00Z, not \(since)")
            }
        }

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.audit")
            let sinceDate = since.flatMap { try? Date($0, strategy: .iso8601) }
            let (log, _) = try await source.read(logger: logger)
            var rows: [(Date, [String])] = []
            for (partition, records) in log {
                for (_, value) in records {
                    guard let record = try? Vigil_V1_AuditRecord(serializedBytes: value),
                          let event = try? Vigil_V1_AuditEvent(serializedBytes: record.serializedEvent) else { continue }
                    let name = AuditExport.kindName(event.kind)
                    guard kind.map({ $0 == name }) ?? true, sinceDate.map({ event.eventTime.date >= $0 }) ?? true else { continue }
                    rows.append((event.eventTime.date, [
                        event.eventTime.date.formatted(.iso8601), name, event.actor, event.subject, "\(partition)/\(record.sequence)", event.detail,
                    ]))
                }
            }
            printTable(header: ["TIME", "KIND", "ACTOR", "SUBJECT", "CHAIN/SEQ", "DETAIL"], rows: rows.sorted { $0.0 < $1.0 }.map(\.1))
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the audit log and its signed heads to a folder that `vigil audit verify --from DIR` checks offline."
        )

        @Argument(help: "The folder to write log.jsonl and heads.jsonl to (created if missing).")
        var directory: String

        @OptionGroup var source: Source
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.audit")
            let (log, heads) = try await source.read(logger: logger)
            try AuditExport.write(log: log, heads: heads, to: directory)
            let records = log.values.reduce(0) { $0 + $1.count }
            writeLine("exported \(TopologyOption.count(records, "record")) of \(TopologyOption.count(log.count, "chain")) and \(TopologyOption.count(heads.count, "signed head")) to \(directory); check them with `vigil audit verify --from \(directory) --public-key KEY`")
        }
    }

    struct RequestHead: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "request-head",
            abstract: "Ask vigil-audit to sign the head of every chain now (a HEAD_REQUESTED event into each partition; the request is itself chained)."
        )

        @OptionGroup var connection: ConnectionOptions

        @Option(help: "Operator account recorded as asking (default: $USER, else the login name).")
        var actor = ProcessInfo.processInfo.environment["USER"] ?? NSUserName()

        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.audit")
            let cluster = connection.configuration(clientID: "vigil-audit-cli")
            do {
                let metadata = try await KafkaAdmin(configuration: cluster, logger: logger).metadata(topics: [AuditSequencer.eventsTopic])
                let partitions = metadata.topics.first { $0.name == AuditSequencer.eventsTopic }?.partitions.count ?? 0
                guard partitions > 0 else {
                    writeError("vigil: \(AuditSequencer.eventsTopic) does not exist on \(cluster.bootstrapServers)")
                    throw ExitCode.failure
                }
                let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(cluster: cluster), logger: logger)
                let request = UUID().uuidString.lowercased()
                try await producer.send(all: (0..<Int32(partitions)).map { partition in
                    let event = AuditEvents.event(
                        id: "head-request:\(request):\(partition)", kind: .headRequested, actor: actor, subject: "audit-chain:\(partition)",
                        detail: "signed head requested", origin: "vigil audit request-head"
                    )
                    let value: [UInt8] = try event.serializedBytes()
                    return KafkaProducerMessage(topic: AuditSequencer.eventsTopic, partition: partition, key: Array(event.subject.utf8), value: value)
                })
                await producer.close()
                writeLine("asked for the heads of \(TopologyOption.count(partitions, "chain")); vigil-audit signs them onto \(AuditSequencer.headsTopic)")
            } catch let exit as ExitCode {
                throw exit
            } catch {
                writeError("vigil: cannot ask for signed heads on \(cluster.bootstrapServers): \(error)")
                throw ExitCode.failure
            }
        }
    }

    struct Keygen: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make an Ed25519 key for vigil-audit to sign chain heads with (AUDIT_SIGNING_KEY_FILE), and print its public key."
        )

        @Option(help: "The file to write the private key to (mode 0600; refused if it exists).")
        var out: String

        func run() throws {
            guard !FileManager.default.fileExists(atPath: out) else {
                writeError("vigil: \(out) exists; a signing key is never overwritten")
                throw ExitCode.failure
            }
            guard let key = SigningKeys.writeNewKey(to: out) else {
                writeError("vigil: cannot write \(out)")
                throw ExitCode.failure
            }
            writeLine("wrote the signing key to \(out) (give vigil-audit its path as AUDIT_SIGNING_KEY_FILE; keep it out of git and logs)")
            writeLine("public key (for `vigil audit verify --public-key`): \(key.publicKey.rawRepresentation.base64EncodedString())")
            writeLine("key id: \(SigningKeys.keyID(key.publicKey))")
        }
    }
}

/// The export format: `log.jsonl` (one line per record: partition, offset, the record in
/// base64) and `heads.jsonl` (one signed head per line, base64).
enum AuditExport {
    struct LogLine: Codable {
        var partition: Int32
        var offset: Int64
        var record: String
    }

    struct HeadLine: Codable {
        var head: String
    }

    static func write(log: [Int32: [(offset: Int64, value: [UInt8])]], heads: [Vigil_V1_AuditChainHead], to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var lines: [String] = []
        for partition in log.keys.sorted() {
            for (offset, value) in log[partition] ?? [] {
                lines.append(String(decoding: try encoder.encode(LogLine(partition: partition, offset: offset, record: Data(value).base64EncodedString())), as: UTF8.self))
            }
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: (directory as NSString).appendingPathComponent("log.jsonl"), atomically: true, encoding: .utf8)
        let headLines = try heads.map { head in
            let bytes: Data = try head.serializedBytes()
            return String(decoding: try encoder.encode(HeadLine(head: bytes.base64EncodedString())), as: UTF8.self)
        }
        try (headLines.joined(separator: "\n") + "\n").write(toFile: (directory as NSString).appendingPathComponent("heads.jsonl"), atomically: true, encoding: .utf8)
    }

    static func read(from directory: String) throws -> (log: [Int32: [(offset: Int64, value: [UInt8])]], heads: [Vigil_V1_AuditChainHead]) {
        var log: [Int32: [(offset: Int64, value: [UInt8])]] = [:]
        let text = try String(contentsOfFile: (directory as NSString).appendingPathComponent("log.jsonl"), encoding: .utf8)
        for (number, line) in text.split(separator: "\n").enumerated() {
            guard let entry = try? JSONDecoder().decode(LogLine.self, from: Data(line.utf8)), let value = Data(base64Encoded: entry.record) else {
                throw ValidationError("\(directory)/log.jsonl line \(number + 1) is not an exported record")
            }
            log[entry.partition, default: []].append((entry.offset, Array(value)))
        }
        for partition in log.keys { log[partition]?.sort { $0.offset < $1.offset } }
        return (log, try heads(file: (directory as NSString).appendingPathComponent("heads.jsonl")))
    }

    static func heads(file: String) throws -> [Vigil_V1_AuditChainHead] {
        try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").enumerated().map { number, line in
            guard let entry = try? JSONDecoder().decode(HeadLine.self, from: Data(line.utf8)), let bytes = Data(base64Encoded: entry.head),
                  let head = try? Vigil_V1_AuditChainHead(serializedBytes: bytes) else {
                throw ValidationError("\(file) line \(number + 1) is not a signed head")
            }
            return head
        }
    }

    /// "rule_changed" for AUDIT_EVENT_KIND_RULE_CHANGED.
    static func kindName(_ kind: Vigil_V1_AuditEventKind) -> String {
        switch kind {
        case .ruleChanged: "rule_changed"
        case .alertAction: "alert_action"
        case .snapshotViewed: "snapshot_viewed"
        case .snapshotExported: "snapshot_exported"
        case .cameraConfigChanged: "camera_config_changed"
        case .privacyChangeRequested: "privacy_change_requested"
        case .privacyChangeApproved: "privacy_change_approved"
        case .privacyChangeRejected: "privacy_change_rejected"
        case .subscriptionChanged: "subscription_changed"
        case .headRequested: "head_requested"
        default: "unspecified"
        }
    }
}
