import Foundation
import Testing
import TestSupport

/// Resident memory stays under budget + ring + a small constant, whatever the number of datasets:
/// measured in its own process (`tokenfeed bench memory`), so other tests do not disturb it.
@Suite struct MemoryBudgetTests {
    struct Report: Decodable {
        let datasets: Int
        let steps: Int
        let preload_budget_bytes: Int
        let ring_bytes: Int
        let rss_growth_bytes: Int
    }

    @Test(arguments: [(60, 1024), (60, 8192), (60, 65536)])
    func residentGrowthStaysUnderBudgetPlusRing(datasets: Int, budgetKiB: Int) throws {
        let dir = TemporaryDirectory("tokenfeed-memory")
        let result = try run(productsFolder + "/tokenfeed", ["bench", "memory", "--datasets", "\(datasets)",
                                                             "--preload-kib", "\(budgetKiB)", "--steps", "300", "--work", dir.path])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONDecoder().decode(Report.self, from: result.stdout)
        #expect(report.datasets == datasets && report.steps == 300)
        let constant = 16 << 20
        #expect(report.rss_growth_bytes <= report.preload_budget_bytes + report.ring_bytes + constant,
                "grew \(report.rss_growth_bytes) bytes; budget \(report.preload_budget_bytes), ring \(report.ring_bytes)")
    }
}
