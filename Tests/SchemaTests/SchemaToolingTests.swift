import Foundation
import Testing

@Suite("Schema tooling")
struct SchemaToolingTests {
    @Test("buf lint (STANDARD) passes on proto/ with the pinned buf")
    func bufLint() throws {
        let buf = try locateBuf()
        let version = try runTool(buf, ["--version"])
        #expect(version.output.trimmingCharacters(in: .whitespacesAndNewlines) == "1.75.0",
                "Scripts/install-deps pins buf-bin==1.75.0; lint rules may differ in other versions")
        let lint = try runTool(buf, ["lint"])
        #expect(lint.succeeded, Comment(rawValue: "buf lint failed (exit \(lint.status)):\n\(lint.output)"))
    }

    @Test("the committed Swift is what Scripts/gen-proto generates from proto/")
    func generatedCodeIsCurrent() throws {
        let script = repositoryRoot.appendingPathComponent("Scripts/gen-proto")
        let check = try runTool(URL(fileURLWithPath: "/bin/bash"), [script.path, "--check"])
        #expect(check.succeeded, Comment(rawValue: "Scripts/gen-proto --check failed (exit \(check.status)):\n\(check.output)"))
        #expect(check.output.contains("up to date"))
    }
}
