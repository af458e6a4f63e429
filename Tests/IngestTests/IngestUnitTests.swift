import Foundation
import Testing
@testable import Ingest

@Suite("Ingest: stream locations, credentials, frozen streams")
struct IngestUnitTests {
    @Test("file paths, file:// URLs and ?loop=1; rtsp URLs are left alone")
    func locations() {
        let path = StreamLocation("/media/a.mp4"), looped = StreamLocation("file:///media/a.mp4?loop=1"), camera = StreamLocation("rtsp://cam/stream?x=1")
        #expect(path.url == "/media/a.mp4" && path.isFile && !path.loop)
        #expect(looped.url == "/media/a.mp4" && looped.isFile && looped.loop)
        #expect(camera.url == "rtsp://cam/stream?x=1" && !camera.isFile && !camera.loop)
    }

    @Test("credentials split at the first colon only, empty parts kept: an empty user, a password with colons, colons alone, no colon at all")
    func credentialsSplitAtTheFirstColon() {
        let source = "rtsp://10.0.0.5/live"
        #expect(StreamLocation(source, credentials: ":pw").url == "rtsp://:pw@10.0.0.5/live", "the password is never sent as the user name")
        #expect(StreamLocation(source, credentials: "op:a:b").url == "rtsp://op:a%3Ab@10.0.0.5/live")
        #expect(StreamLocation(source, credentials: ":::").url == "rtsp://:%3A%3A@10.0.0.5/live", "colons alone do not crash the replica")
        #expect(StreamLocation(source, credentials: "user:").url == "rtsp://user:@10.0.0.5/live")
        #expect(StreamLocation(source, credentials: "token").url == "rtsp://token@10.0.0.5/live")
    }

    @Test("credentials from the secrets directory go into the RTSP URL percent-encoded; a missing secret is an error naming the reference, never a value")
    func credentials() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-secrets-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try "operator:p@ss:w/rd\n".write(to: directory.appendingPathComponent("gate-cam"), atomically: true, encoding: .utf8)
        let secret = try IngestSource.credentials("gate-cam", in: directory.path)
        #expect(secret == "operator:p@ss:w/rd")
        #expect(StreamLocation("rtsp://10.0.0.5/live", credentials: secret).url == "rtsp://operator:p%40ss%3Aw%2Frd@10.0.0.5/live")
        #expect(try IngestSource.credentials("", in: directory.path) == nil)
        #expect { try IngestSource.credentials("absent", in: directory.path) } throws: { "\($0)".contains("\"absent\"") && !"\($0)".contains("p@ss") }
        #expect { try IngestSource.credentials("../etc/passwd", in: directory.path) } throws: { "\($0)".contains("not a plain secret name") }
        #expect { try IngestSource.credentials("gate-cam", in: nil) } throws: { "\($0)".contains("INGEST_SECRETS_DIR is not set") }
    }

    @Test("a stream whose timestamps stop advancing is frozen once the limit has passed; any advance resets it")
    func freezeWatch() {
        var watch = FreezeWatch(limit: .seconds(5))
        let start = ContinuousClock.now
        let answers = [(100, 0), (100, 4), (100, 5), (101, 6), (101, 10), (90, 11)].map { time, second in
            watch.isFrozen(afterPacketAt: Int64(time), now: start + .seconds(second))
        }
        #expect(answers == [false, false, true, false, false, true])
    }
}
