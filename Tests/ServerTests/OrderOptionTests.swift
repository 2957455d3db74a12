import Foundation
import Testing
import TokenfeedCurriculum
@testable import TokenfeedServer

/// `order:` in the daemon's config file and `--order` on its command line (issue 10.3): quota by
/// default, nanotron on request, anything else refused naming the setting. The served bytes under
/// `--order nanotron` are checked in clients/python/tests/test_nanotron_order.py.
@Suite struct OrderOptionTests {
    @Test func theConfigFileTakesTheOrder() throws {
        #expect(try ConfigFile.parse(text: "order: nanotron\n", path: "c.yaml").order == .nanotron)
        #expect(try ConfigFile.parse(text: "order: quota\n", path: "c.yaml").order == .quota)
        #expect(try ConfigFile.parse(text: "ring_slots: 8\n", path: "c.yaml").order == nil)
        do {
            _ = try ConfigFile.parse(text: "ring_slots: 8\norder: megatron\n", path: "c.yaml")
            Issue.record("order: megatron was accepted")
        } catch {
            #expect(error.description.contains("c.yaml:2:"), "\(error.description)")
            #expect(error.description.contains("expected one of quota, nanotron, got \"megatron\""), "\(error.description)")
        }
        #expect(ServerOptions(curriculumPath: "c", dataRoot: nil, socketPath: "s").order == .quota)
    }

    @Test func theCommandLineRefusesAnUnknownOrder() throws {
        let fixture = try ServerFixture()
        let daemon = try DaemonProcess(["--curriculum", fixture.curriculumPath, "--data-root", fixture.dataRoot,
                                        "--socket", fixture.socketPath, "--order", "random"], socket: fixture.socketPath)
        #expect(daemon.waitForExit() == 2)
        #expect(daemon.stderr.contains("The value 'random' is invalid for '--order <order>'. Please provide one of 'quota' and 'nanotron'."),
                "\(daemon.stderr)")
    }
}
