import Foundation
import Testing
import Topology

/// Each rule `Topology.validate()` enforces, on a small fixture changed in one place: the
/// problem names its key path and says what to do.
@Suite("Topology validation")
struct TopologyValidationTests {
    @Test("the fixture is valid, so every problem below comes from its one change")
    func fixtureIsValid() throws {
        #expect(try fixture().validate() == [])
    }

    @Test("the repository's Topology/topology.yaml validates with zero problems")
    func repositoryTopologyIsValid() throws {
        let topology = try Topology.load(contentsOf: repositoryTopology)
        #expect(topology.validate() == [])
        // What ARCHITECTURE.md names must be there.
        let architecture = [
            "video.packets.v1", "camera.health.v1", "frames.v1", "detections.v1", "snapshots.v1", "incidents.v1",
            "vigil-match.state.changelog", "rules.v1", "alerts.v1", "alert.actions.v1", "audit.events.v1", "audit.log.v1", "audit.heads.v1",
        ]
        for name in architecture { #expect(topology.topic(named: name) != nil, "\(name) is declared") }
        #expect(topology.workers.map(\.name) == ["vigil-ingest", "vigil-decode", "vigil-detect", "vigil-match", "vigil-alert", "vigil-audit"])
        #expect(topology.regions.map(\.name) == ["region-a", "region-b", "region-c"])
        #expect(topology.topics.filter(\.rawPixels).map(\.name) == ["video.packets.v1", "video.packets.v1.dlq", "frames.v1", "frames.v1.dlq"])
        for worker in topology.workers {
            for input in worker.inputs { #expect(topology.topic(named: input + ".dlq") != nil, "\(worker.name) consumes \(input), which has a DLQ") }
        }
    }

    // MARK: Undeclared topics

    @Test("a worker reading or writing an undeclared topic")
    func undeclaredTopics() throws {
        let found = try problems { topology in
            topology.workers[topology.index(ofWorker: "reader")].inputs = ["frames.v2"]
            topology.workers[topology.index(ofWorker: "stateful")].tables = ["settings.v2"]
            topology.workers[topology.index(ofWorker: "reader")].outputs.append(.init(topic: "events.v9", key: "camera_id"))
        }
        #expect(
            found.contains(
                TopologyProblem(
                    keyPath: "workers.reader.inputs[0]",
                    message: "topic \"frames.v2\" is not declared under topics; declare it there or fix the name"
                )
            )
        )
        #expect(found.contains { $0.keyPath == "workers.stateful.tables[0]" && $0.message.contains("\"settings.v2\" is not declared under topics") })
        #expect(found.contains { $0.keyPath == "workers.reader.outputs[1].topic" && $0.message.contains("\"events.v9\" is not declared under topics") })
    }

    // MARK: Replicas against partitions

    @Test("max_replicas above the partitions of an input")
    func maxReplicasAbovePartitions() throws {
        let found = try problems { $0.workers[$0.index(ofWorker: "stateful")].maxReplicas = 5 }
        #expect(
            found == [
                TopologyProblem(
                    keyPath: "workers.stateful.max_replicas",
                    message: "is 5 but input events.v1 has 4 partitions, so replicas beyond 4 would sit idle; "
                        + "lower max_replicas to 4 or give events.v1 more partitions"
                )
            ]
        )
    }

    @Test("a region's replica max above the partitions its multiplier gives an input")
    func regionReplicasAbovePartitions() throws {
        let found = try problems { topology in
            let big = topology.index(ofRegion: "big")
            topology.regions[big].replicas[1].max = 13
        }
        #expect(
            found == [
                TopologyProblem(
                    keyPath: "regions.big.replicas.stateful.max",
                    message: "is 13 but in big input events.v1 has 12 partitions (4 × partition_multiplier 3), so replicas beyond 12 "
                        + "would sit idle; lower max to 12 or raise partition_multiplier"
                )
            ]
        )
        // The same bound is fine where the multiplier is larger.
        #expect(try problems { $0.regions[$0.index(ofRegion: "small")].partitionMultiplier = 4; $0.regions[$0.index(ofRegion: "small")].replicas[1].max = 13 } == [])
    }

    @Test("tables are read by every replica and do not bound max_replicas")
    func tablesDoNotBoundReplicas() throws {
        // settings.v1 has 1 partition; stateful scales to 4 and 12 anyway.
        let topology = try fixture()
        #expect(topology.topic(named: "settings.v1")?.partitions == 1)
        #expect(topology.worker(named: "stateful")?.maxReplicas == 4)
        #expect(topology.validate() == [])
        // Moved into the group's inputs, the same topic bounds it.
        let found = try problems { topology in
            let worker = topology.index(ofWorker: "stateful")
            topology.workers[worker].tables = []
            topology.workers[worker].inputs.append("settings.v1")
        }
        #expect(found.contains { $0.keyPath == "workers.stateful.max_replicas" && $0.message.hasPrefix("is 4 but input settings.v1 has 1 partition,") })
    }

    // MARK: Keys

    @Test("a compacted topic written by a worker that does not key it")
    func compactedTopicWithoutKey() throws {
        let found = try problems { $0.workers[$0.index(ofWorker: "stateful")].outputs[0].key = nil }
        #expect(
            found == [
                TopologyProblem(
                    keyPath: "workers.stateful.outputs[0]",
                    message: "writes compacted topic state.changelog without a key; compaction keeps the newest record per key, "
                        + "so add key: camera_id to this output"
                )
            ]
        )
    }

    @Test("a compacted topic that declares no key, and a worker keying by something else")
    func compactedTopicKeys() throws {
        let unkeyedTopic = try problems { $0.topics[$0.index(ofTopic: "settings.v1")].key = nil }
        #expect(unkeyedTopic.contains { $0.keyPath == "topics.settings.v1.key" && $0.message.hasPrefix("is missing on a compacted topic") })
        let otherKey = try problems { $0.workers[$0.index(ofWorker: "reader")].outputs[0].key = "alert_id" }
        #expect(
            otherKey == [
                TopologyProblem(
                    keyPath: "workers.reader.outputs[0].key",
                    message: "is alert_id but events.v1 is keyed by camera_id; use camera_id, so every producer sends a key's records to the same partition"
                )
            ]
        )
    }

    // MARK: Duplicates

    @Test("a topic, worker or region name given twice in the YAML fails to load with both lines")
    func duplicateNamesInYAML() throws {
        let topic = try #require(loadError(fixtureYAML.replacingOccurrences(of: "  settings.v1.dlq:", with: "  events.v1:")))
        #expect(topic.keyPath == "topics.events.v1")
        #expect(topic.line == 57)
        #expect(topic.message == "\"events.v1\" is declared twice (lines 21 and 57); names must be unique, so remove one or rename it")
        #expect(topic.description.hasPrefix("test.yaml:57:"))

        let worker = try #require(loadError(fixtureYAML.replacingOccurrences(of: "  stateful:", with: "  reader:")))
        #expect(worker.keyPath == "workers.reader")
        #expect(worker.message.hasPrefix("\"reader\" is declared twice (lines 66 and 73)"))

        let region = try #require(loadError(fixtureYAML.replacingOccurrences(of: "  big:", with: "  small:")))
        #expect(region.keyPath == "regions.small")

        let bounds = try #require(loadError(fixtureYAML.replacingOccurrences(of: "      stateful: {min: 1, max: 2}", with: "      reader: {min: 1, max: 2}")))
        #expect(bounds.keyPath == "regions.small.replicas.reader")
    }

    @Test("duplicate names in values built in code, and a topic listed twice in one list")
    func duplicateNamesInValues() throws {
        let found = try problems { topology in
            topology.topics.append(topology.topics[topology.index(ofTopic: "events.v1.dlq")])
            topology.workers.append(topology.workers[topology.index(ofWorker: "stateful")])
            topology.regions.append(topology.regions[topology.index(ofRegion: "big")])
            topology.workers[topology.index(ofWorker: "reader")].inputs.append("cam.raw.v1")
        }
        #expect(found.contains(TopologyProblem(keyPath: "topics.events.v1.dlq", message: "is declared 2 times; names must be unique, so remove one or rename it")))
        #expect(found.contains(TopologyProblem(keyPath: "workers.stateful", message: "is declared 2 times; names must be unique, so remove one or rename it")))
        #expect(found.contains(TopologyProblem(keyPath: "regions.big", message: "is declared 2 times; names must be unique, so remove one or rename it")))
        #expect(found.contains(TopologyProblem(keyPath: "workers.reader.inputs[1]", message: "\"cam.raw.v1\" is listed twice (also at [0]); remove one")))
        // Two copies of one worker also share a consumer group.
        #expect(found.contains { $0.keyPath == "workers.stateful.consumer_group" } == false, "a copy is not a second owner")
    }

    @Test("two workers in one consumer group")
    func sharedConsumerGroup() throws {
        let found = try problems { $0.workers[$0.index(ofWorker: "stateful")].consumerGroup = "reader" }
        #expect(
            found == [
                TopologyProblem(
                    keyPath: "workers.stateful.consumer_group",
                    message: "\"reader\" is also the consumer group of reader; two workers in one group would split each other's partitions, "
                        + "so give each worker its own group"
                )
            ]
        )
    }

    // MARK: Raw pixels

    @Test("a raw-pixel topic kept longer than 60 minutes, or forever")
    func rawPixelRetention() throws {
        let twoHours = try problems { $0.topics[$0.index(ofTopic: "cam.raw.v1")].retention = "2h" }
        #expect(twoHours.contains(TopologyProblem(keyPath: "topics.cam.raw.v1.retention", message: "is 2h but cam.raw.v1 carries raw pixels; keep it at 60m or less")))
        let forever = try problems { $0.topics[$0.index(ofTopic: "cam.raw.v1")].retention = .forever }
        #expect(forever.contains(TopologyProblem(keyPath: "topics.cam.raw.v1.retention", message: "is forever but cam.raw.v1 carries raw pixels; keep it at 60m or less")))
        // Exactly an hour is allowed.
        #expect(try problems { topology in
            topology.topics[topology.index(ofTopic: "cam.raw.v1")].retention = "60m"
        } == [])
    }

    @Test("the audit log kept less than 6 months")
    func auditLogRetention() throws {
        var topology = try Topology.load(contentsOf: repositoryTopology)
        let index = topology.index(ofTopic: "audit.log.v1")
        topology.topics[index].retention = "30d"
        #expect(topology.validate() == [TopologyProblem(
            keyPath: "topics.audit.log.v1.retention",
            message: "is 30d but the audit log is kept at least 6 months (183d) so auditors can check what happened; write 183d or more, or forever"
        )])
        topology.topics[index].retention = "183d"
        #expect(topology.validate() == [])
    }

    @Test("cameras.v1 compacted or expiring: the history the two-person rule is judged on would be lost")
    func camerasKeepHistory() throws {
        var topology = try Topology.load(contentsOf: repositoryTopology)
        let index = topology.index(ofTopic: "cameras.v1")
        #expect(topology.validate() == [])
        let message = "must keep its whole history (cleanup_policy delete, retention forever): a reader judges each camera change against the configuration it replaces, and refuses one-admin changes it cannot judge once older records are compacted or expired"
        topology.topics[index].cleanupPolicy = .compact
        #expect(topology.validate() == [TopologyProblem(keyPath: "topics.cameras.v1", message: message)])
        topology.topics[index].cleanupPolicy = .delete
        topology.topics[index].retention = "365d"
        #expect(topology.validate() == [TopologyProblem(keyPath: "topics.cameras.v1", message: message)])
    }

    @Test("a raw-pixel topic read by more than one worker")
    func rawPixelTopicReadTwice() throws {
        let found = try problems { $0.workers[$0.index(ofWorker: "stateful")].tables.append("cam.raw.v1") }
        #expect(
            found.contains(
                TopologyProblem(
                    keyPath: "topics.cam.raw.v1",
                    message: "carries raw pixels but is read by 2 workers: reader (workers.reader.inputs[0]), stateful (workers.stateful.tables[1]); "
                        + "only the next stage may read raw pixels, so remove it from all but one worker"
                )
            )
        )
    }

    @Test("a raw-pixel topic's DLQ that keeps the pixels longer, or does not say it holds pixels")
    func rawPixelDeadLetters() throws {
        let longer = try problems { $0.topics[$0.index(ofTopic: "cam.raw.v1.dlq")].retention = "7d" }
        #expect(
            longer == [
                TopologyProblem(
                    keyPath: "topics.cam.raw.v1.dlq.retention",
                    message: "is 7d but it holds copies of raw pixels that cam.raw.v1 keeps only 10m; lower it to 10m or less"
                ),
                TopologyProblem(keyPath: "topics.cam.raw.v1.dlq.retention", message: "is 7d but cam.raw.v1.dlq carries raw pixels; keep it at 60m or less"),
            ]
        )
        let unmarked = try problems { $0.topics[$0.index(ofTopic: "cam.raw.v1.dlq")].rawPixels = false }
        #expect(
            unmarked == [
                TopologyProblem(
                    keyPath: "topics.cam.raw.v1.dlq.raw_pixels",
                    message: "must be true: it holds copies of raw-pixel records from cam.raw.v1, so the raw-pixel rules apply to it"
                )
            ]
        )
    }

    @Test("a raw-pixel topic cannot be compacted")
    func rawPixelCompaction() throws {
        let found = try problems { $0.topics[$0.index(ofTopic: "cam.raw.v1")].cleanupPolicy = .compact }
        #expect(found.contains(TopologyProblem(keyPath: "topics.cam.raw.v1.cleanup_policy", message: "is compact, which would keep raw pixels beyond their retention; use delete")))
    }

    // MARK: Topic settings

    @Test("retention written in a way vigil does not understand")
    func unknownRetentionSyntax() throws {
        for text in ["10 minutes", "600", "1.5h", "-5m", "0d", "7days", ""] {
            let found = try problems { $0.topics[$0.index(ofTopic: "events.v1")].retention = Retention(text) }
            #expect(
                found == [
                    TopologyProblem(
                        keyPath: "topics.events.v1.retention",
                        message: "\"\(text)\" is not a retention; write a whole number with a unit (ms, s, m, h, d, w), e.g. \"10m\" or \"7d\", or \"forever\""
                    )
                ],
                "\(text)"
            )
        }
    }

    @Test("partitions or replication below 1, and min_insync above replication")
    func countsOutOfRange() throws {
        let noPartitions = try problems { $0.topics[$0.index(ofTopic: "events.v1.dlq")].partitions = 0 }
        #expect(noPartitions.contains(TopologyProblem(keyPath: "topics.events.v1.dlq.partitions", message: "is 0; a topic needs at least 1 partition")))

        let noReplicas = try problems { topology in
            let topic = topology.index(ofTopic: "events.v1.dlq")
            topology.topics[topic].replicationFactor = 0
            topology.topics[topic].minInsyncReplicas = 1
        }
        #expect(
            noReplicas == [
                TopologyProblem(
                    keyPath: "topics.events.v1.dlq.replication_factor",
                    message: "is 0; use at least 1 (3 on production clusters, so a broker can fail without losing data)"
                )
            ]
        )

        let tooManyInsync = try problems { $0.topics[$0.index(ofTopic: "events.v1.dlq")].minInsyncReplicas = 4 }
        #expect(
            tooManyInsync == [
                TopologyProblem(
                    keyPath: "topics.events.v1.dlq.min_insync_replicas",
                    message: "is 4 but replication_factor is 3, so every acks=all write would fail; lower min_insync_replicas to at most 3 or raise replication_factor"
                )
            ]
        )
        let noInsync = try problems { $0.topics[$0.index(ofTopic: "events.v1.dlq")].minInsyncReplicas = 0 }
        #expect(noInsync.map(\.keyPath) == ["topics.events.v1.dlq.min_insync_replicas"])
    }

    @Test("dead-letter topics: every consumed input has one (tables need none), and each belongs to a declared topic")
    func deadLetterTopics() throws {
        #expect(try problems { $0.topics.remove(at: $0.index(ofTopic: "settings.v1.dlq")) } == [], "a table's rejected records are logged by every reader, not dead-lettered")
        let missing = try problems { $0.topics.remove(at: $0.index(ofTopic: "events.v1.dlq")) }
        #expect(
            missing == [
                TopologyProblem(
                    keyPath: "workers.stateful.inputs[0]",
                    message: "events.v1 has no dead-letter topic; declare events.v1.dlq under topics, so records that cannot be processed go there "
                        + "instead of stopping the worker"
                )
            ]
        )
        let orphan = try problems { topology in
            var copy = topology.topics[topology.index(ofTopic: "events.v1.dlq")]
            copy.name = "gone.v1.dlq"
            topology.topics.append(copy)
        }
        #expect(orphan.contains { $0.keyPath == "topics.gone.v1.dlq" && $0.message.hasPrefix("is the dead-letter topic of gone.v1, which is not declared") })
    }

    @Test("partitioned_like and same-key inputs need equal partitions in every profile")
    func copartitioning() throws {
        // Unscaled, the changelog keeps 4 partitions where events.v1 gets 12 (big) and 8 (dev).
        let changelog = try problems { $0.topics[$0.index(ofTopic: "state.changelog")].scaled = false }
        #expect(
            changelog.map(\.message) == [
                "state.changelog has 4 partitions but events.v1 has 12 partitions (4 × partition_multiplier 3) in region big; partition i here "
                    + "belongs to partition i there, so give both the same partitions and the same scaled setting",
                "state.changelog has 4 partitions but events.v1 has 8 partitions (4 × partition_multiplier 2) in the dev profile; partition i here "
                    + "belongs to partition i there, so give both the same partitions and the same scaled setting",
            ]
        )
        #expect(Set(changelog.map(\.keyPath)) == ["topics.state.changelog.partitioned_like"])

        let inputs = try problems { topology in
            topology.workers[topology.index(ofWorker: "stateful")].inputs.append("cam.raw.v1")
            topology.workers[topology.index(ofWorker: "reader")].inputs = []
            topology.topics[topology.index(ofTopic: "cam.raw.v1")].partitions = 8
            topology.workers[topology.index(ofWorker: "reader")].maxReplicas = 4
        }
        #expect(inputs.contains { $0.keyPath == "workers.stateful.inputs" && $0.message.hasPrefix("events.v1 has 4 partitions but cam.raw.v1 has 8 partitions;") })
    }

    @Test("regions need bounds for every worker, sane bounds and a name other than dev")
    func regionRules() throws {
        let found = try problems { topology in
            let small = topology.index(ofRegion: "small")
            topology.regions[small].replicas.removeLast()
            topology.regions[small].replicas.append(.init(worker: "ghost", min: 1, max: 1))
            topology.regions[small].replicas[0].min = 3
            topology.regions[small].replicas[0].max = 2
            topology.regions[topology.index(ofRegion: "big")].name = "dev"
        }
        #expect(found.contains(TopologyProblem(keyPath: "regions.small.replicas", message: "has no bounds for worker stateful; add stateful: {min: 1, max: N}")))
        #expect(found.contains { $0.keyPath == "regions.small.replicas.ghost" && $0.message.hasPrefix("worker \"ghost\" is not declared under workers") })
        #expect(found.contains(TopologyProblem(keyPath: "regions.small.replicas.reader.min", message: "is 3, above max 2; lower min or raise max")))
        #expect(found.contains { $0.keyPath == "regions.dev" && $0.message.hasPrefix("the name dev is reserved") })
    }

    @Test("the dev profile cannot replicate beyond its brokers")
    func devProfile() throws {
        let found = try problems { $0.dev.replicationFactor = 4 }
        #expect(found == [TopologyProblem(keyPath: "dev.replication_factor", message: "is 4 but dev.brokers is 3; use at most 3")])
    }

    @Test("every problem is reported at once, in file order")
    func allProblemsAtOnce() throws {
        let found = try problems { topology in
            topology.topics[topology.index(ofTopic: "events.v1")].partitions = 0
            topology.topics[topology.index(ofTopic: "cam.raw.v1")].retention = "1d"
            topology.workers[topology.index(ofWorker: "reader")].inputs = ["frames.v2"]
            topology.dev.partitionMultiplier = 0
        }
        let paths = found.map(\.keyPath)
        #expect(paths.contains("topics.events.v1.partitions"))
        #expect(paths.contains("topics.cam.raw.v1.retention"))
        #expect(paths.contains("workers.reader.inputs[0]"))
        #expect(paths.last == "dev.partition_multiplier")
        #expect(paths.firstIndex(of: "topics.events.v1.partitions")! < paths.firstIndex(of: "workers.reader.inputs[0]")!)
    }
}

@Suite("Topology validation: source workers")
struct SourceWorkerValidationTests {
    /// The fixture plus a source worker owning the keys of settings.v1 (1 partition).
    static func withSource(maxReplicas: Int = 1, inputs: [String] = [], owns: String = "settings.v1") -> (inout Topology) -> Void {
        { topology in
            topology.workers.append(Topology.Worker(
                name: "source", description: "Owns settings.", consumerGroup: "source", inputs: inputs, owns: owns,
                outputs: [Topology.Output(topic: "events.v1", key: "camera_id")], maxReplicas: maxReplicas
            ))
            for index in topology.regions.indices { topology.regions[index].replicas.append(.init(worker: "source", min: 1, max: 1)) }
        }
    }

    @Test("a source worker owning a declared table, within its partitions, is valid")
    func valid() throws {
        #expect(try problems(after: Self.withSource()) == [])
    }

    @Test("an undeclared owned table, owning while also consuming inputs, and more replicas than the owned table's partitions are each reported")
    func problemsReported() throws {
        #expect(try problems(after: Self.withSource(owns: "nothing.v1")).map(\.keyPath) == ["workers.source.owns"])
        #expect(try problems(after: Self.withSource(inputs: ["events.v1"])).contains {
            $0.keyPath == "workers.source.owns" && $0.message.contains("also has inputs")
        })
        let tooMany = try problems(after: Self.withSource(maxReplicas: 2))
        #expect(tooMany.contains { $0.keyPath == "workers.source.max_replicas" && $0.message.contains("owned table settings.v1 has 1 partition") }, "\(tooMany)")
    }
}

@Suite("Topology validation: state changelogs")
struct ChangelogPolicyTests {
    @Test("compact,delete needs a key and a bounded retention; compact alone keeps forever")
    func compactDelete() throws {
        #expect(try problems { topology in
            topology.topics[topology.index(ofTopic: "state.changelog")].cleanupPolicy = .compactDelete
            topology.topics[topology.index(ofTopic: "state.changelog")].retention = Retention("1d")
        } == [])
        let forever = try problems { $0.topics[$0.index(ofTopic: "state.changelog")].cleanupPolicy = .compactDelete }
        #expect(forever.map(\.keyPath) == ["topics.state.changelog.retention"])
        let bounded = try problems { topology in
            topology.topics[topology.index(ofTopic: "state.changelog")].retention = Retention("1d")
        }
        #expect(bounded.first?.message.contains("compact,delete") == true)
    }
}
