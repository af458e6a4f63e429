import ArgumentParser
import Cameras
import Crypto
import Foundation
import SigningKeys

/// The admin who signs the cameras of a dev cluster that `vigil up` or a benchmark runs: a key
/// and a trusted admin keys file naming it, made once per folder. A production cluster's admins
/// are its operators (`vigil cameras keygen`), each with their own key.
public enum DevAdmin {
    public static let account = "dev-admin"

    /// The environment that makes workers trust the dev admin and `vigil cameras` sign as it.
    public static func environment(in directory: String) throws -> [String: String] {
        let keyFile = (directory as NSString).appendingPathComponent("\(account).key")
        let keysFile = (directory as NSString).appendingPathComponent("camera-admins.txt")
        if !FileManager.default.fileExists(atPath: keyFile) {
            guard let key = SigningKeys.writeNewKey(to: keyFile) else { throw ValidationError("cannot write the dev admin's key to \(keyFile)") }
            let line = "# the dev cluster's admin; production admins are listed by the operator\n\(account) \(SigningKeys.text(key.publicKey))\n"
            guard FileManager.default.createFile(atPath: keysFile, contents: Data(line.utf8)) else { throw ValidationError("cannot write \(keysFile)") }
        }
        return [CameraAdmins.environmentKey: keysFile, "VIGIL_ADMIN_KEY_FILE": keyFile]
    }
}
