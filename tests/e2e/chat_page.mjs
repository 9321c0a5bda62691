// The chat page in headless Chromium (Debian's, driven by playwright-core): load /, send a message,
// watch the reply stream in (its text grows over several reads), see the stats line, save a
// screenshot to build/test-logs/chat_page.png.
import {chromium} from "playwright-core";
import {startServer, testModel, check, done, root} from "../serve/lib.mjs";

const srv = await startServer(["-m", testModel(), "--parallel", "2", "--alias", "tiny"]);
const browser = await chromium.launch({executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"]});
try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", e => errors.push(String(e)));
    await page.goto(srv.base + "/");
    await page.waitForFunction(() => document.getElementById("model").textContent === "tiny", null, {timeout: 10000});
    check(true, "page loads and lists the model");
    await page.fill("#temp", "0");
    await page.fill("#in", "Write a long story about a fox.");
    await page.click("#send");
    const lengths = [];
    for (let i = 0; i < 60; i++) {
        const t = await page.$eval(".msg.assistant", e => e.textContent.length).catch(() => 0);
        lengths.push(t);
        if (await page.$eval("#stats", e => e.textContent.includes("tokens/s")).catch(() => false)) break;
        await page.waitForTimeout(50);
    }
    const distinct = new Set(lengths.filter(x => x > 0)).size;
    check(distinct >= 2, "the reply streams in (text grew over several reads)", JSON.stringify(lengths.slice(0, 20)));
    const stats = await page.$eval("#stats", e => e.textContent);
    check(/tokens\/s/.test(stats), "stats line after the reply", stats);
    const reply = await page.$eval(".msg.assistant", e => e.textContent);
    check(reply.length > 0 && !(await page.$(".msg.err")), "a reply and no error", reply.slice(0, 80));
    await page.screenshot({path: root + "/build/test-logs/chat_page.png", fullPage: true});
    check(errors.length === 0, "no page errors", errors.join("; "));
} catch (e) {
    check(false, "no exception", e.stack);
} finally {
    await browser.close();
}
check((await srv.stop()) === 0, "SIGTERM: clean exit");
done("chat_page");
