import TopicSpecs

/// One thing wrong with a topology: where (a key path such as `workers.vigil-detect.inputs[0]`)
/// and what to do about it.
public struct TopologyProblem: Error, Sendable, Hashable, CustomStringConvertible {
    public var keyPath: String
    public var message: String

    public init(keyPath: String, message: String) {
        self.keyPath = keyPath
        self.message = message
    }

    public var description: String { "\(keyPath): \(message)" }
}

extension Topology {
    /// Raw pixels may be kept at most this long.
    public static let maximumRawPixelRetentionMilliseconds: Int64 = 60 * 60_000
    /// The hash-chained audit log, kept at least `auditLogMinimumRetentionMilliseconds` (6 months).
    public static let auditLogTopic = "audit.log.v1"
    /// Camera configuration: its whole signed history is what the two-person rule is judged on.
    public static let camerasTopic = "cameras.v1"
    public static let auditLogMinimumRetentionMilliseconds: Int64 = 183 * 86_400_000

    /// Every problem, in file order (topics, workers, regions, dev). Empty when the topology
    /// can be applied. Checks what a single topic or worker cannot see on its own: undeclared
    /// topics, replica bounds against partitions in every region, keys of compacted topics,
    /// the raw-pixel rules, dead-letter topics and co-partitioning.
    public func validate() -> [TopologyProblem] {
        var problems: [TopologyProblem] = []
        func report(_ keyPath: String, _ message: String) {
            problems.append(TopologyProblem(keyPath: keyPath, message: message))
        }
        checkTopics(report)
        checkRawPixels(report)
        checkWorkers(report)
        checkRegions(report)
        checkDevProfile(report)
        return problems
    }

    typealias Report = (_ keyPath: String, _ message: String) -> Void

    // MARK: Topics

    private func checkTopics(_ report: Report) {
        reportDuplicates(topics.map(\.name), section: "topics", report)
        let workerNames = Set(workers.map(\.name))
        for topic in topics {
            let path = "topics.\(topic.name)"
            do throws(TopicSpecProblem) {
                try KafkaTopicSpec(name: topic.name, partitions: 1, replicationFactor: 1).validate()
            } catch {
                report(path, error.detail)
            }
            if topic.description.trimmingWhitespace.isEmpty {
                report("\(path).description", "is empty; say in a sentence what the topic carries and who reads it")
            }
            if topic.partitions < 1 {
                report("\(path).partitions", "is \(topic.partitions); a topic needs at least 1 partition")
            }
            if topic.replicationFactor < 1 {
                report(
                    "\(path).replication_factor",
                    "is \(topic.replicationFactor); use at least 1 (3 on production clusters, so a broker can fail without losing data)"
                )
            }
            if topic.minInsyncReplicas < 1 {
                report("\(path).min_insync_replicas", "is \(topic.minInsyncReplicas); use at least 1 (2 with replication_factor 3)")
            } else if topic.replicationFactor >= 1, topic.minInsyncReplicas > topic.replicationFactor {
                report(
                    "\(path).min_insync_replicas",
                    "is \(topic.minInsyncReplicas) but replication_factor is \(topic.replicationFactor), so every acks=all write would fail; "
                        + "lower min_insync_replicas to at most \(topic.replicationFactor) or raise replication_factor"
                )
            }
            if !topic.retention.isValid {
                report(
                    "\(path).retention",
                    "\"\(topic.retention.text)\" is not a retention; write a whole number with a unit (ms, s, m, h, d, w), "
                        + "e.g. \"10m\" or \"7d\", or \"forever\""
                )
            }
            if topic.name == Self.auditLogTopic, topic.retention.isValid, !topic.retention.isForever,
               (topic.retention.milliseconds ?? 0) < Self.auditLogMinimumRetentionMilliseconds {
                report(
                    "\(path).retention",
                    "is \(topic.retention) but the audit log is kept at least 6 months (183d) so auditors can check what happened; write 183d or more, or forever"
                )
            }
            if topic.name == Self.camerasTopic, topic.cleanupPolicy != .delete || !topic.retention.isForever {
                report(
                    "\(path)",
                    "must keep its whole history (cleanup_policy delete, retention forever): a reader judges each camera change against the configuration it replaces, and refuses one-admin changes it cannot judge once older records are compacted or expired"
                )
            }
            if let key = topic.key, key.trimmingWhitespace.isEmpty {
                report("\(path).key", "is empty; name what producers key records by (e.g. camera_id), or remove key for unkeyed records")
            }
            if topic.cleanupPolicy.compacts {
                if topic.key == nil {
                    report(
                        "\(path).key",
                        "is missing on a compacted topic; compaction keeps the newest record per key, so name the key producers use (e.g. camera_id)"
                    )
                }
                if topic.cleanupPolicy == .compact, topic.retention.isValid, !topic.retention.isForever {
                    report(
                        "\(path).retention",
                        "is \(topic.retention) but cleanup_policy compact keeps the newest record of every key regardless of age; "
                            + "write \"forever\", or use cleanup_policy \"compact,delete\" (a state changelog) or delete"
                    )
                }
                if topic.cleanupPolicy == .compactDelete, topic.retention.isForever {
                    report(
                        "\(path).retention",
                        "is forever but cleanup_policy \"compact,delete\" exists to bound it; give a retention (a state changelog keeps only what restore needs), or use compact"
                    )
                }
            }
            if let other = topic.partitionedLike, other != topic.name {
                if let target = self.topic(named: other) {
                    for profile in profiles where partitions(of: topic, in: profile) != partitions(of: target, in: profile) {
                        report(
                            "\(path).partitioned_like",
                            "\(topic.name) has \(describePartitions(of: topic, in: profile)) but \(other) has "
                                + "\(describePartitions(of: target, in: profile))\(profile.phrase); partition i here belongs to partition i there, "
                                + "so give both the same partitions and the same scaled setting"
                        )
                    }
                } else {
                    report("\(path).partitioned_like", notDeclared(other))
                }
            }
            for (index, producer) in topic.externalProducers.enumerated() where workerNames.contains(producer) {
                report(
                    "\(path).external_producers[\(index)]",
                    "\(producer) is a worker; list \(topic.name) under workers.\(producer).outputs instead"
                )
            }
            reportDuplicates(in: topic.externalProducers, listPath: "\(path).external_producers", report)
            if let origin = topic.deadLetterOrigin {
                checkDeadLetterTopic(topic, origin: origin, report)
            }
        }
        // Every topic a worker consumes has a dead-letter topic, named once at its first reader.
        // Tables need none: every replica reads every table record, so a rejected one is
        // logged and counted by each, never copied once per replica.
        var named: Set<String> = []
        for worker in workers {
            for (index, name) in worker.inputs.enumerated() where self.topic(named: name) != nil && !named.contains(name) {
                named.insert(name)
                let deadLetters = name + Self.deadLetterSuffix
                if self.topic(named: deadLetters) == nil {
                    report(
                        "workers.\(worker.name).inputs[\(index)]",
                        "\(name) has no dead-letter topic; declare \(deadLetters) under topics, so records that cannot be processed go there "
                            + "instead of stopping the worker"
                    )
                }
            }
        }
    }

    private func checkDeadLetterTopic(_ topic: Topic, origin name: String, _ report: Report) {
        let path = "topics.\(topic.name)"
        guard let origin = self.topic(named: name) else {
            report(path, "is the dead-letter topic of \(name), which is not declared under topics; declare \(name), or rename or remove this one")
            return
        }
        if let originKey = origin.key, let key = topic.key, key != originKey {
            report("\(path).key", "is \(key) but \(name) is keyed by \(originKey); a dead letter keeps its record's key, so use \(originKey)")
        }
        guard origin.rawPixels else { return }
        if !topic.rawPixels {
            report(
                "\(path).raw_pixels",
                "must be true: it holds copies of raw-pixel records from \(name), so the raw-pixel rules apply to it"
            )
        }
        guard let originMilliseconds = origin.retention.milliseconds, topic.retention.isValid else { return }
        if topic.retention.isForever || (topic.retention.milliseconds ?? 0) > originMilliseconds {
            report(
                "\(path).retention",
                "is \(topic.retention) but it holds copies of raw pixels that \(name) keeps only \(origin.retention); "
                    + "lower it to \(origin.retention) or less"
            )
        }
    }

    // MARK: Raw pixels

    private func checkRawPixels(_ report: Report) {
        for topic in topics where topic.rawPixels {
            let path = "topics.\(topic.name)"
            if topic.retention.isForever
                || (topic.retention.milliseconds ?? 0) > Self.maximumRawPixelRetentionMilliseconds
            {
                report("\(path).retention", "is \(topic.retention) but \(topic.name) carries raw pixels; keep it at 60m or less")
            }
            if topic.cleanupPolicy.compacts {
                report("\(path).cleanup_policy", "is \(topic.cleanupPolicy.rawValue), which would keep raw pixels beyond their retention; use delete")
            }
            let readers = workers.flatMap { worker in
                [("inputs", worker.inputs), ("tables", worker.tables), ("delivers", worker.delivers)].flatMap { list, names in
                    names.enumerated().filter { $0.element == topic.name }.map { index, _ in
                        (worker: worker.name, path: "workers.\(worker.name).\(list)[\(index)]")
                    }
                }
            }
            let readingWorkers = Set(readers.map(\.worker))
            if readingWorkers.count > 1 {
                let list = readers.map { "\($0.worker) (\($0.path))" }.joined(separator: ", ")
                report(
                    path,
                    "carries raw pixels but is read by \(readingWorkers.count) workers: \(list); only the next stage may read raw pixels, "
                        + "so remove it from all but one worker"
                )
            }
        }
    }

    // MARK: Workers

    private func checkWorkers(_ report: Report) {
        reportDuplicates(workers.map(\.name), section: "workers", report)
        var groupOwners: [String: String] = [:]
        for worker in workers {
            let path = "workers.\(worker.name)"
            if worker.description.trimmingWhitespace.isEmpty {
                report("\(path).description", "is empty; say in a sentence what the worker does")
            }
            if worker.consumerGroup.trimmingWhitespace.isEmpty {
                report("\(path).consumer_group", "is empty; name the worker's consumer group (usually the worker's name)")
            } else if let owner = groupOwners[worker.consumerGroup], owner != worker.name {
                report(
                    "\(path).consumer_group",
                    "\"\(worker.consumerGroup)\" is also the consumer group of \(owner); two workers in one group would split each other's "
                        + "partitions, so give each worker its own group"
                )
            } else {
                groupOwners[worker.consumerGroup] = worker.name
            }
            if worker.maxReplicas < 1 {
                report("\(path).max_replicas", "is \(worker.maxReplicas); use at least 1")
            }

            for (list, names) in [("inputs", worker.inputs), ("tables", worker.tables), ("delivers", worker.delivers)] {
                for (index, name) in names.enumerated() where topic(named: name) == nil {
                    report("\(path).\(list)[\(index)]", notDeclared(name))
                }
                reportDuplicates(in: names, listPath: "\(path).\(list)", report)
            }
            if let owned = worker.owns {
                if topic(named: owned) == nil {
                    report("\(path).owns", notDeclared(owned))
                }
                if !worker.inputs.isEmpty {
                    report(
                        "\(path).owns",
                        "is set but the worker also has inputs; a source worker owns the keys of a table's partitions instead of consuming inputs, so give one or the other"
                    )
                }
            }
            for (index, name) in worker.tables.enumerated() where worker.inputs.contains(name) {
                report(
                    "\(path).tables[\(index)]",
                    "\(name) is also an input; read it either through the group (inputs) or in full by every replica (tables), not both"
                )
            }
            reportDuplicates(in: worker.outputs.map(\.topic), listPath: "\(path).outputs", report)
            for (index, output) in worker.outputs.enumerated() {
                checkOutput(output, path: "\(path).outputs[\(index)]", report)
            }

            let inputs = worker.inputs.compactMap { topic(named: $0) }
            let splitByGroup = worker.groupTopics.compactMap { topic(named: $0) }
            if worker.maxReplicas >= 1, let smallest = splitByGroup.min(by: { partitions(of: $0, in: .base) < partitions(of: $1, in: .base) }),
                worker.maxReplicas > smallest.partitions
            {
                report(
                    "\(path).max_replicas",
                    "is \(worker.maxReplicas) but \(worker.owns == smallest.name ? "owned table" : "input") \(smallest.name) has \(describePartitions(of: smallest, in: .base)), so replicas beyond "
                        + "\(smallest.partitions) would sit idle; lower max_replicas to \(smallest.partitions) or give \(smallest.name) more partitions"
                )
            }
            checkCopartitionedInputs(worker, inputs: inputs, report)
        }
    }

    private func checkOutput(_ output: Output, path: String, _ report: Report) {
        guard let topic = topic(named: output.topic) else {
            report("\(path).topic", notDeclared(output.topic))
            return
        }
        switch (output.key, topic.key) {
        case (nil, let topicKey?) where topic.cleanupPolicy.compacts:
            report(
                path,
                "writes compacted topic \(topic.name) without a key; compaction keeps the newest record per key, "
                    + "so add key: \(topicKey) to this output"
            )
        case (nil, nil) where topic.cleanupPolicy.compacts:
            report(
                path,
                "writes compacted topic \(topic.name) without a key; compaction keeps the newest record per key, so declare the topic's key "
                    + "and add the same key to this output"
            )
        case (nil, let topicKey?):
            report(path, "writes \(topic.name) unkeyed but the topic is keyed by \(topicKey); add key: \(topicKey) to keep each key's records in order")
        case (let key?, let topicKey?) where key != topicKey:
            report(
                "\(path).key",
                "is \(key) but \(topic.name) is keyed by \(topicKey); use \(topicKey), so every producer sends a key's records to the same partition"
            )
        case (let key?, nil):
            report("\(path).key", "is \(key) but \(topic.name) declares no key; add key: \(key) to the topic, or remove it here")
        default:
            break
        }
    }

    /// Per-key state needs one replica to own partition i of every input with that key:
    /// the group's range assignment gives that only when the partition counts are equal.
    private func checkCopartitionedInputs(_ worker: Worker, inputs: [Topic], _ report: Report) {
        var byKey: [String: [Topic]] = [:]
        for input in inputs { if let key = input.key { byKey[key, default: []].append(input) } }
        for key in byKey.keys.sorted() {
            let topics = byKey[key]!
            guard let first = topics.first else { continue }
            for profile in profiles {
                for other in topics.dropFirst() where partitions(of: other, in: profile) != partitions(of: first, in: profile) {
                    report(
                        "workers.\(worker.name).inputs",
                        "\(first.name) has \(describePartitions(of: first, in: profile)) but \(other.name) has "
                            + "\(describePartitions(of: other, in: profile))\(profile.phrase); both are keyed by \(key), and per-key state needs one "
                            + "replica to own the same partition of each, so give them the same partitions and scaled setting"
                    )
                }
            }
        }
    }

    // MARK: Regions

    private func checkRegions(_ report: Report) {
        reportDuplicates(regions.map(\.name), section: "regions", report)
        for region in regions {
            let path = "regions.\(region.name)"
            if region.name == Profile.devName {
                report(path, "the name \(Profile.devName) is reserved for the dev cluster's profile (--region \(Profile.devName)); rename the region")
            }
            if region.description.trimmingWhitespace.isEmpty {
                report("\(path).description", "is empty; say in a few words what the region is")
            }
            if region.kafkaCluster.trimmingWhitespace.isEmpty {
                report("\(path).kafka_cluster", "is empty; name the region's Strimzi Kafka resource, e.g. vigil-\(region.name)")
            }
            if region.bootstrap.trimmingWhitespace.isEmpty {
                report("\(path).bootstrap", "is empty; give the cluster's bootstrap servers as host:port[,host:port]")
            }
            if region.cameras < 1 {
                report("\(path).cameras", "is \(region.cameras); a region has at least 1 camera")
            }
            if region.partitionMultiplier < 1 {
                report("\(path).partition_multiplier", "is \(region.partitionMultiplier); use 1 or more (scaled topics get base partitions × this)")
            }
            reportDuplicates(region.replicas.map(\.worker), section: "\(path).replicas", report)
            for bounds in region.replicas where worker(named: bounds.worker) == nil {
                report("\(path).replicas.\(bounds.worker)", "worker \"\(bounds.worker)\" is not declared under workers; declare it there or fix the name")
            }
            for worker in workers where region.bounds(of: worker.name) == nil {
                report("\(path).replicas", "has no bounds for worker \(worker.name); add \(worker.name): {min: 1, max: N}")
            }
            for bounds in region.replicas {
                guard let worker = worker(named: bounds.worker) else { continue }
                checkBounds(bounds, of: worker, in: region, path: "\(path).replicas.\(bounds.worker)", report)
            }
        }
    }

    private func checkBounds(_ bounds: ReplicaBounds, of worker: Worker, in region: Region, path: String, _ report: Report) {
        if bounds.min < 0 {
            report("\(path).min", "is \(bounds.min); use 0 or more (0 lets the autoscaler stop the worker while it has no lag)")
        }
        if bounds.max < 1 {
            report("\(path).max", "is \(bounds.max); use at least 1")
            return
        }
        if bounds.min > bounds.max {
            report("\(path).min", "is \(bounds.min), above max \(bounds.max); lower min or raise max")
        }
        let profile = Profile.region(region.name)
        let splitByGroup = worker.groupTopics.compactMap { topic(named: $0) }
        if let smallest = splitByGroup.min(by: { partitions(of: $0, in: profile) < partitions(of: $1, in: profile) }) {
            let count = partitions(of: smallest, in: profile)
            if bounds.max > count {
                report(
                    "\(path).max",
                    "is \(bounds.max) but in \(region.name) \(worker.owns == smallest.name ? "owned table" : "input") \(smallest.name) has \(describePartitions(of: smallest, in: profile)), so replicas "
                        + "beyond \(count) would sit idle; lower max to \(count) or raise \(smallest.scaled ? "partition_multiplier" : "its partitions")"
                )
            }
        } else if worker.groupTopics.isEmpty, region.cameras >= 1, bounds.max > region.cameras {
            report(
                "\(path).max",
                "is \(bounds.max) but \(region.name) has \(region.cameras) cameras; a \(worker.name) replica without a camera has nothing to do, "
                    + "so lower max to \(region.cameras)"
            )
        }
    }

    // MARK: Dev profile

    private func checkDevProfile(_ report: Report) {
        if !(1...32).contains(dev.brokers) {
            report("dev.brokers", "is \(dev.brokers); the dev cluster runs 1 to 32 brokers")
        }
        if dev.replicationFactor < 1 {
            report("dev.replication_factor", "is \(dev.replicationFactor); use at least 1")
        } else if dev.brokers >= 1, dev.replicationFactor > dev.brokers {
            report("dev.replication_factor", "is \(dev.replicationFactor) but dev.brokers is \(dev.brokers); use at most \(dev.brokers)")
        }
        if dev.partitionMultiplier < 1 {
            report("dev.partition_multiplier", "is \(dev.partitionMultiplier); use 1 or more")
        }
    }

    // MARK: Helpers

    private func notDeclared(_ name: String) -> String {
        "topic \"\(name)\" is not declared under topics; declare it there or fix the name"
    }

    /// Names declared more than once in one section (possible for values built in code; YAML refuses duplicate keys).
    private func reportDuplicates(_ names: [String], section: String, _ report: Report) {
        var counts: [String: Int] = [:]
        for name in names { counts[name, default: 0] += 1 }
        var reported: Set<String> = []
        for name in names where counts[name]! > 1 && reported.insert(name).inserted {
            report("\(section).\(name)", "is declared \(counts[name]!) times; names must be unique, so remove one or rename it")
        }
    }

    /// A topic listed twice in one list, reported at its second position.
    private func reportDuplicates(in list: [String], listPath: String, _ report: Report) {
        var firstIndex: [String: Int] = [:]
        for (index, name) in list.enumerated() {
            if let first = firstIndex[name] {
                report("\(listPath)[\(index)]", "\"\(name)\" is listed twice (also at [\(first)]); remove one")
            } else {
                firstIndex[name] = index
            }
        }
    }
}
