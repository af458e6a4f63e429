import ChildProcesses
import Crypto
import Foundation
import SigningKeys

/// The camera admins of the test processes: two accounts with keys in a temporary folder and
/// the trusted admin keys file naming both. Every package executable a test starts reads them
/// from its environment (`CAMERA_ADMIN_KEYS_FILE`, and `VIGIL_ADMIN_KEY_FILE` for
/// `test-admin`), as an operator's shell and a worker's deployment would set them.
enum TestAdmins {
    static let first = "test-admin"
    static let second = "second-admin"

    struct Files {
        let directory: URL
        var keysFile: String { directory.appendingPathComponent("admins.txt").path }
        func keyFile(_ account: String) -> String { directory.appendingPathComponent("\(account).key").path }
    }

    static let files: Files = {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-test-admins-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let files = Files(directory: directory)
        var lines = "# the test processes' camera admins\n"
        for account in [first, second] {
            let key = SigningKeys.writeNewKey(to: files.keyFile(account))!
            lines += "\(account) \(SigningKeys.text(key.publicKey))\n"
        }
        try! lines.write(toFile: files.keysFile, atomically: true, encoding: .utf8)
        return files
    }()

    static var environment: [String: String] {
        ["CAMERA_ADMIN_KEYS_FILE": files.keysFile, "VIGIL_ADMIN_KEY_FILE": files.keyFile(first)]
    }

    /// `vigil` arguments acting as `account` with that admin's key.
    static func acting(as account: String) -> [String] {
        ["--actor", account, "--key", files.keyFile(account)]
    }
}
