// The command map, given to oclif explicitly so that a bundle needs no directory scan.
import Allocator from './allocator.js'
import Proxy from './proxy.js'
import Members from './members.js'
import Rtt from './rtt.js'
import ConfigShow from './config/show.js'
import ConfigValidate from './config/validate.js'
import ConfigInit from './config/init.js'
import HelloWorldServer from './hello-world-server.js'

export const COMMANDS = {
  allocator: Allocator,
  proxy: Proxy,
  members: Members,
  rtt: Rtt,
  'config:show': ConfigShow,
  'config:validate': ConfigValidate,
  'config:init': ConfigInit,
  'hello-world-server': HelloWorldServer
}
